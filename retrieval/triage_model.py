"""The trained triage model: does a message need a human, and which kind of human.

all-MiniLM-L6-v2 fine-tuned as a five-way classifier (routine, emergency, crisis,
urgent_symptom, clinical_judgment) on the triage development set, shipped as an int8 ONNX
graph with its tokenizer in `models/canon-triage/` (training: `training/triage/finetune.py`).
"""

CATEGORIES = ("routine", "emergency", "crisis", "urgent_symptom", "clinical_judgment")
URGENT_CATEGORIES = CATEGORIES[1:]
