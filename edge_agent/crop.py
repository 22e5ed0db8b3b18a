"""The crop rule: how a face box becomes the classifier's input image.

The converter cuts its training crops with this same rule and records it in the
model manifest, so the agent feeds the model exactly what it was trained on.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]  # x, y, w, h in frame pixels


@dataclass(frozen=True)
class CropRule:
    """A square around the box centre, grown by a margin, resized bilinearly."""

    margin: float = 0.15
    size: int = 64
    channels: str = "BGR"

    def to_manifest(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "shape": "square",
            "side": "max(w, h) * (1 + 2 * margin)",
            "border": "replicate",
            "interpolation": "bilinear",
        }

    @classmethod
    def from_manifest(cls, rule: dict[str, Any]) -> CropRule:
        return cls(
            margin=float(rule["margin"]),
            size=int(rule["size"]),
            channels=str(rule.get("channels", "BGR")),
        )

    def square(self, box: Box) -> Box:
        """The square region of the frame this rule cuts for a face box."""
        x, y, w, h = box
        side = max(1, round(max(w, h) * (1.0 + 2.0 * self.margin)))
        cx, cy = x + w / 2.0, y + h / 2.0
        return round(cx - side / 2.0), round(cy - side / 2.0), side, side

    def cut(self, frame: np.ndarray, box: Box) -> np.ndarray:
        """Cut and resize one face; parts outside the frame repeat its edge."""
        sx, sy, side, _ = self.square(box)
        height, width = frame.shape[:2]
        left, top = max(0, -sx), max(0, -sy)
        right = max(0, sx + side - width)
        bottom = max(0, sy + side - height)
        region = frame[
            max(0, sy) : min(height, sy + side), max(0, sx) : min(width, sx + side)
        ]
        if region.size == 0:
            raise ValueError(f"face box {box} lies outside the {width}x{height} frame")
        if left or top or right or bottom:
            region = cv2.copyMakeBorder(
                region, top, bottom, left, right, cv2.BORDER_REPLICATE
            )
        crop = cv2.resize(
            region, (self.size, self.size), interpolation=cv2.INTER_LINEAR
        )
        if self.channels == "RGB":
            crop = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
        return crop
