"""Classification metrics: accuracy, per-class precision and recall, macro-F1."""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion(truth: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def summarise(
    truth: np.ndarray, predicted: np.ndarray, labels: tuple[str, ...]
) -> dict[str, Any]:
    """A JSON-ready report of how well ``predicted`` matches ``truth``."""
    matrix = confusion(truth, predicted, len(labels))
    per_class = {}
    f1s = []
    for index, label in enumerate(labels):
        hits = matrix[index, index]
        said = matrix[:, index].sum()
        real = matrix[index, :].sum()
        precision = hits / said if said else 0.0
        recall = hits / real if real else 0.0
        f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
        f1s.append(f1)
        per_class[label] = {
            "precision": round(float(precision), 4),
            "recall": round(float(recall), 4),
            "f1": round(float(f1), 4),
            "support": int(real),
        }
    total = int(matrix.sum())
    return {
        "count": total,
        "accuracy": round(float(np.trace(matrix) / total), 4) if total else 0.0,
        "macro_f1": round(float(np.mean(f1s)), 4),
        "per_class": per_class,
        "confusion": matrix.tolist(),
    }
