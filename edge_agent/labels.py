"""The classifier's labels, in model output order, and what each means."""

from __future__ import annotations

LABELS: tuple[str, ...] = ("with_mask", "mask_incorrect", "without_mask")
COMPLIANT = {"with_mask": True, "mask_incorrect": False, "without_mask": False}
