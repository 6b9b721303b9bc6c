"""Builds Canon's collaborators from settings, each once, only when first needed."""

from functools import cached_property
from pathlib import Path

from sqlalchemy.engine import Engine

from canon.settings import Settings
from governance.db import init_db, make_engine
from governance.errors import InvalidInput
from ingest.chunk import ChunkBudget
from ingest.index import IndexSync
from retrieval.answer import AnswerService
from retrieval.catalog import Catalog, FreshnessPolicy
from retrieval.embed import Embedder
from retrieval.escalation import EscalationRoutes
from retrieval.generator import LlmGenerator
from retrieval.grounding import GroundingCheck, NliModel
from retrieval.hybrid import Retriever
from retrieval.rerank import RERANK_FILE, CrossEncoderReranker, OnnxCrossEncoder, Reranker
from retrieval.sparse import SparseEncoder
from retrieval.store import EdgeStore, ServerStore, VectorStore
from retrieval.triage import SemanticTriage, Triager
from retrieval.triage_model import MODEL_DIR, TriageModel


class Runtime:
    def __init__(
        self, settings: Settings | None = None, *, embedder: Embedder | None = None
    ) -> None:
        self.settings = settings or Settings()
        if embedder is not None:  # share one loaded model between runtimes (tests, evals)
            self.__dict__["embedder"] = embedder

    @cached_property
    def engine(self) -> Engine:
        engine = make_engine(self.settings.db_url)
        init_db(engine)
        return engine

    @cached_property
    def embedder(self) -> Embedder:
        s = self.settings
        return Embedder(
            s.embed_model,
            backend=s.embed_backend,
            onnx_cache=s.onnx_cache,
            cache_size=s.query_cache_size,
        )

    @cached_property
    def chunk_budget(self) -> ChunkBudget:
        """Chunks counted in the embedding model's own word pieces."""
        return ChunkBudget.for_model(self.settings.embed_model, self.settings.chunk_tokens)

    @cached_property
    def sparse(self) -> SparseEncoder:
        return SparseEncoder()

    @cached_property
    def store(self) -> VectorStore:
        s = self.settings
        if s.qdrant_url:
            return ServerStore(
                s.qdrant_url,
                self.embedder.dim,
                api_key=s.qdrant_api_key.get_secret_value() if s.qdrant_api_key else None,
                collection=s.qdrant_collection,
                shard_number=s.qdrant_shards,
                replication_factor=s.qdrant_replicas,
            )
        store = EdgeStore(s.shard_path, self.embedder.dim)
        try:
            self._check_encoder(s.encoder_marker, store)
        except InvalidInput:
            store.close()
            raise
        return store

    def _check_encoder(self, marker: Path, store: EdgeStore) -> None:
        """An embedded index holds one encoder's vectors: refuse to query it with another's.

        An index with points and no marker predates the marker, when torch was the only
        backend: it is stamped as torch's, so another backend is refused rather than
        querying torch vectors with int8 ones.
        """
        key = self.embedder.cache_key
        if marker.is_file():
            built = marker.read_text().strip()
        elif store.count():
            built = self.embedder.model_name  # torch's cache key, the only backend back then
        else:
            built = key
        if built != key:
            raise InvalidInput(
                f"the index under {self.settings.home} was built with encoder {built!r}, "
                f"not {key!r}: set CANON_EMBED_BACKEND to match, or move "
                f"{self.settings.shard_path} aside and run `canon doctor` to rebuild it"
            )
        if not marker.is_file():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(key + "\n")

    @cached_property
    def sync(self) -> IndexSync:
        return IndexSync(self.store, self.embedder, self.sparse, self.engine)

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.engine)

    @cached_property
    def retriever(self) -> Retriever:
        rerank = self.settings.rerank_model
        return Retriever(
            self.store,
            self.embedder,
            self.sparse,
            self.catalog,
            freshness=FreshnessPolicy(
                self.settings.freshness_mode, self.settings.freshness_grace_days
            ),
            reranker=_reranker(rerank) if rerank else None,
            sparse_weight=self.settings.sparse_weight,
        )

    @cached_property
    def generator(self) -> LlmGenerator | None:
        s = self.settings
        if not (s.llm_base_url and s.llm_model):
            return None
        key = s.llm_api_key.get_secret_value() if s.llm_api_key else None
        return LlmGenerator(s.llm_base_url, s.llm_model, api_key=key, timeout=s.llm_timeout)

    @cached_property
    def grounding(self) -> GroundingCheck:
        s = self.settings
        return GroundingCheck(
            encoder=self.embedder if s.grounding_embed else None,
            nli=NliModel(s.nli_model) if s.nli_model else None,
        )

    @cached_property
    def triager(self) -> Triager:
        choice = self.settings.triage_model
        if choice == "off":
            return Triager(None)
        model = TriageModel(
            MODEL_DIR if choice == "shipped" else Path(choice),
            second_opinion=self.settings.triage_second_opinion,
        )
        return Triager(model)

    @cached_property
    def answers(self) -> AnswerService:
        semantic = SemanticTriage(self.embedder) if self.settings.semantic_triage else None
        return AnswerService(
            self.retriever,
            grounding=self.grounding,
            generator=self.generator,
            semantic_triage=semantic,
            triager=self.triager,
            routes=EscalationRoutes(self.engine, self.catalog),
            min_relevance=self.settings.min_relevance,
        )

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
            del self.__dict__["store"]
        if "engine" in self.__dict__:
            self.engine.dispose()


def _reranker(model_dir: str) -> Reranker:
    """Canon's own int8 ONNX model (a folder with `model-int8.onnx` and its card), or a
    sentence-transformers cross-encoder folder."""
    if (Path(model_dir).expanduser() / RERANK_FILE).is_file():
        return OnnxCrossEncoder(model_dir)
    return CrossEncoderReranker(model_dir)
