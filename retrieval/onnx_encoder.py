"""The bundled sentence-transformers model as an int8 ONNX graph run by onnxruntime.

Export (once per model, offline): the model's transformer is exported with
`torch.onnx.export` (the dynamo exporter; the TorchScript one if that fails), then its
weights are quantised to int8 with `onnxruntime.quantization.quantize_dynamic`. Both
steps are deterministic for a given model and library versions, and the result is
cached in a directory named by a hash of the model files and those versions, so a
model or library change never picks up a stale graph. Nothing is downloaded.

Run time needs only onnxruntime and the `tokenizers` fast tokenizer: texts are
tokenized, sorted by length and batched (so a batch pads to similar lengths), then
mean-pooled over the attention mask and L2-normalised, as the sentence-transformers
pipeline of all-MiniLM-L6-v2 does.
"""

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from governance.errors import InvalidInput

EXPORT_VERSION = "2"  # bump when the export or quantisation recipe changes
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
MODEL_FILE = "model-int8.onnx"
# Inputs up to this many tokens (questions) run on one intra-op thread, longer ones
# (passages) on onnxruntime's default of one per core. Measured on 2 cores: a 14-token
# question took the same wall time on 1 thread as on 2 and 35% less CPU (4.5 against 7.0
# ms), which leaves the other core to the server; a 256-token passage ran 1.5x faster on
# 2. The thread count does not change a vector (identical bits, tested).
SHORT_TOKENS = 64


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "canon" / "onnx"


def _max_seq_length(model_dir: Path) -> int:
    config = model_dir / "sentence_bert_config.json"
    if config.is_file():
        return int(json.loads(config.read_text()).get("max_seq_length", 256))
    return 256


def _check_pipeline(model_dir: Path) -> None:
    """Refuse models whose pooling this runner does not reproduce (it does mean pooling)."""
    pooling = model_dir / "1_Pooling" / "config.json"
    if pooling.is_file():
        cfg = json.loads(pooling.read_text())
        if not cfg.get("pooling_mode_mean_tokens") or any(
            cfg.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens")
        ):
            raise InvalidInput(f"{model_dir}: the onnx-int8 backend supports mean pooling only")
    if not (model_dir / "tokenizer.json").is_file():
        raise InvalidInput(f"{model_dir}: the onnx-int8 backend needs a fast tokenizer.json")


def fingerprint(model_dir: Path) -> str:
    """Hash of the model's files and the versions that shape the exported graph."""
    import onnxruntime

    h = hashlib.sha256(f"canon-onnx-int8:{EXPORT_VERSION}:{onnxruntime.__version__}".encode())
    try:
        import torch

        h.update(torch.__version__.encode())
    except ImportError:  # pragma: no cover: torch is a dependency; run-only installs may lack it
        pass
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        if path.suffix in {".md"} or path.name.startswith("."):
            continue
        h.update(str(path.relative_to(model_dir)).encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def export_int8(model_dir: Path, out_dir: Path) -> Path:
    """Export and quantise `model_dir` into `out_dir/model-int8.onnx` (written atomically)."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    _check_pipeline(model_dir)
    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()

    class Hidden(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    wrapped = Hidden(model)
    example = tuple(torch.ones(2, 16, dtype=torch.long) for _ in INPUTS)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".export-", dir=out_dir.parent))
    try:
        fp32 = scratch / "model.onnx"
        common: dict[str, Any] = {
            "input_names": list(INPUTS),
            "output_names": ["last_hidden_state"],
            "opset_version": 18,
        }
        with torch.no_grad():
            try:
                batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq", max=512)
                torch.onnx.export(
                    wrapped,
                    example,
                    str(fp32),
                    dynamo=True,
                    external_data=False,
                    dynamic_shapes={name: {0: batch, 1: seq} for name in INPUTS},
                    verbose=False,
                    **common,
                )
                exporter = "dynamo"
            except Exception:  # onnxscript missing or a graph the dynamo exporter rejects
                axes = {name: {0: "batch", 1: "seq"} for name in (*INPUTS, "last_hidden_state")}
                torch.onnx.export(
                    wrapped, example, str(fp32), dynamo=False, dynamic_axes=axes, **common
                )
                exporter = "torchscript"
        # per-channel weight scales: mean cosine to fp32 0.994 on MedQuAD passages, against
        # 0.945 with one scale per tensor (bench/README.md)
        quantize_dynamic(
            str(fp32), str(scratch / MODEL_FILE), weight_type=QuantType.QInt8, per_channel=True
        )
        fp32.unlink()
        (scratch / "export.json").write_text(
            json.dumps(
                {"model_dir": str(model_dir), "exporter": exporter, "torch": torch.__version__},
                indent=2,
            )
        )
        try:
            scratch.rename(out_dir)  # atomic: a concurrent exporter's finished copy wins
        except OSError:
            if not (out_dir / MODEL_FILE).is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return out_dir / MODEL_FILE


def ensure_int8(model_dir: Path, cache_dir: Path | None = None) -> Path:
    """The cached int8 graph for `model_dir`, exporting it first if it is not there."""
    out_dir = (cache_dir or default_cache_dir()) / f"{model_dir.name}-{fingerprint(model_dir)}"
    path = out_dir / MODEL_FILE
    if path.is_file():
        return path
    return export_int8(model_dir, out_dir)


class OnnxInt8Encoder:
    """Mean-pooled, L2-normalised sentence embeddings from the int8 graph.

    Texts run one per call (`run_batch = 1`) although the code batches by sorted length:
    dynamic quantisation scales activations per call, so in a batch a text's vector
    depends on its batch-mates and their padding (cosine down to 0.987 against the same
    text alone), and on 2 cores one text per call measured cheaper (8.2 CPU s per 300
    MedQuAD passages against 14.5 in length-sorted batches of 32). One per call makes a
    text's vector a function of the text, which the embedding cache assumes.
    """

    run_batch = 1

    def __init__(self, model_dir: Path, cache_dir: Path | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        _check_pipeline(model_dir)
        self.path = ensure_int8(model_dir, cache_dir)
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()[:12]
        self.version = f"onnx-int8:{digest}"  # names the exact graph: cache keys use it
        self.max_length = _max_seq_length(model_dir)
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=self.max_length)
        self.session = self._session(ort, threads=0)  # onnxruntime's default: one per core
        self.short_session = self._session(ort, threads=1)
        self.short_tokens = SHORT_TOKENS
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    def _session(self, ort: Any, *, threads: int) -> Any:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        options.intra_op_num_threads = threads
        # idle threads sleep instead of spinning: the cores are shared with the server
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    def encode(self, texts: Sequence[str], batch_size: int) -> npt.NDArray[np.float32]:
        """`batch_size` is ignored: see `run_batch`."""
        return self.encode_batched(texts, self.run_batch)

    def encode_batched(self, texts: Sequence[str], batch_size: int) -> npt.NDArray[np.float32]:
        encodings = self.tokenizer.encode_batch(list(texts))
        lengths = np.array([len(e.ids) for e in encodings])
        order = np.argsort(-lengths, kind="stable")  # longest first: padding stays small
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            width = int(lengths[idx].max())
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            types = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                e = encodings[i]
                n = len(e.ids)
                ids[row, :n] = e.ids
                mask[row, :n] = e.attention_mask
                types[row, :n] = e.type_ids
            session = self.short_session if width <= self.short_tokens else self.session
            (hidden,) = session.run(
                None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            )
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[idx] = pooled / np.clip(norms, 1e-12, None)
        return out
