"""Tiny experiment files for end-to-end tests (seconds per trial)."""
from pathlib import Path

import yaml

TINY_VISION = {
    "name": "tiny_vision",
    "task": {"kind": "vision", "dataset": "digits", "image_size": 8, "depth": 10, "width": 1,
             "train": {"epochs": 2, "batch_size": 64, "lr": 0.05, "max_batches_per_epoch": 4}},
    "search": {"trials": 4, "concurrency": 2, "samples_per_update": 2, "top_k": 3, "max_failures": 0},
}

TINY_LM = {
    "name": "tiny_lm",
    "task": {"kind": "language_model", "vocab_size": 500, "max_tokens": 6000, "bptt": 16, "d_model": 32,
             "n_layers": 2, "n_heads": 2, "train": {"epochs": 1, "batch_size": 16, "max_batches_per_epoch": 4}},
    "search": {"trials": 2, "concurrency": 2, "max_failures": 0},
}


def write_experiment(folder: Path, overrides: dict | None = None, base: dict = TINY_VISION) -> Path:
    doc = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for section, values in (overrides or {}).items():
        if isinstance(values, dict):
            doc[section] = {**doc.get(section, {}), **values}
        else:
            doc[section] = values
    path = Path(folder) / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path
