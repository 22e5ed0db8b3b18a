"""What the kiosk screen shows: the live view with a decision banner, or a message.

Everything is drawn with OpenCV into a BGR image of the screen's size, in
proportions of that size, so it reads the same on a 7-inch panel and on a TV.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge_agent.crop import Box

log = logging.getLogger(__name__)

Colour = tuple[int, int, int]  # B, G, R

COLOURS: dict[str, Colour] = {
    "with_mask": (40, 160, 0),
    "mask_incorrect": (0, 140, 255),
    "without_mask": (30, 30, 220),
    "unknown": (128, 128, 128),
}
# Headline and instruction in the banner for each decision.
BANNERS: dict[str, tuple[str, str]] = {
    "with_mask": ("Mask on", "Thank you"),
    "mask_incorrect": ("Mask worn incorrectly", "Please cover your nose"),
    "without_mask": ("No mask", "Please wear your mask"),
    "unknown": ("Checking", "Please look at the camera"),
}
WHITE: Colour = (255, 255, 255)
DARK: Colour = (20, 20, 20)
IDLE_BACKGROUND: Colour = (70, 45, 20)
CAMERA_BACKGROUND: Colour = (40, 40, 40)
CAMERA_STRIPE: Colour = (0, 190, 255)
STOPPED_BACKGROUND: Colour = (0, 0, 0)
BANNER_SHARE = 0.24  # of the screen height
FONT = cv2.FONT_HERSHEY_DUPLEX


@dataclass(frozen=True)
class Fit:
    """How a frame sits in an area: scale, then offset, in screen pixels."""

    scale: float
    x: int
    y: int
    width: int
    height: int

    def box(self, box: Box) -> tuple[int, int, int, int]:
        """A frame box ``(x, y, w, h)`` as screen corners ``(x0, y0, x1, y1)``."""
        x, y, w, h = box
        return (
            self.x + round(x * self.scale),
            self.y + round(y * self.scale),
            self.x + round((x + w) * self.scale),
            self.y + round((y + h) * self.scale),
        )


def fit(frame_size: tuple[int, int], area: tuple[int, int]) -> Fit:
    """The largest placement of a ``(w, h)`` frame centred in a ``(w, h)`` area."""
    scale = min(area[0] / frame_size[0], area[1] / frame_size[1])
    width = max(1, round(frame_size[0] * scale))
    height = max(1, round(frame_size[1] * scale))
    return Fit(scale, (area[0] - width) // 2, (area[1] - height) // 2, width, height)


def banner_height(size: tuple[int, int]) -> int:
    return round(size[1] * BANNER_SHARE)


def draw_live(
    size: tuple[int, int],
    frame: np.ndarray,
    faces: Sequence[tuple[Box, str]],
    decision: str,
) -> np.ndarray:
    """The frame letterboxed above a banner, each face boxed in its class colour."""
    width, height = size
    canvas = np.zeros((height, width, 3), np.uint8)
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    area = (width, height - banner_height(size))
    place = fit((frame.shape[1], frame.shape[0]), area)
    shrinking = place.scale < 1.0
    canvas[place.y : place.y + place.height, place.x : place.x + place.width] = (
        cv2.resize(
            frame,
            (place.width, place.height),
            interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR,
        )
    )

    thickness = max(2, round(min(size) / 150))
    for box, label in faces:
        x0, y0, x1, y1 = place.box(box)
        colour = COLOURS.get(label, COLOURS["unknown"])
        cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, thickness, cv2.LINE_AA)

    draw_banner(canvas, decision)
    return canvas


def draw_banner(canvas: np.ndarray, decision: str) -> None:
    """The bottom band: the decision's colour, its headline and instruction."""
    height, width = canvas.shape[:2]
    top = height - banner_height((width, height))
    label = decision if decision in BANNERS else "unknown"
    colour = COLOURS[label]
    canvas[top:, :] = colour
    headline, instruction = BANNERS[label]
    ink = DARK if label == "mask_incorrect" else WHITE
    band = height - top
    _centred_text(
        canvas,
        headline,
        (width * 0.05, top + band * 0.1, width * 0.9, band * 0.45),
        ink,
        weight=1.4,
    )
    _centred_text(
        canvas,
        instruction,
        (width * 0.15, top + band * 0.64, width * 0.7, band * 0.2),
        ink,
    )


def draw_message(
    size: tuple[int, int],
    headline: str,
    line: str,
    background: Colour,
    stripe: Colour | None = None,
) -> np.ndarray:
    """A full-screen message: a large headline over one smaller line."""
    width, height = size
    canvas = np.full((height, width, 3), background, np.uint8)
    if stripe is not None:
        band = max(4, round(height * 0.04))
        canvas[:band, :] = stripe
        canvas[height - band :, :] = stripe
    _centred_text(
        canvas,
        headline,
        (width * 0.05, height * 0.3, width * 0.9, height * 0.2),
        WHITE,
        1.4,
    )
    _centred_text(
        canvas, line, (width * 0.2, height * 0.6, width * 0.6, height * 0.08), WHITE
    )
    return canvas


def draw_idle(size: tuple[int, int]) -> np.ndarray:
    return draw_message(
        size, "Face masks required", "Please step up to the camera", IDLE_BACKGROUND
    )


def draw_camera_unavailable(size: tuple[int, int]) -> np.ndarray:
    return draw_message(
        size,
        "Camera unavailable",
        "Please ask staff for help",
        CAMERA_BACKGROUND,
        stripe=CAMERA_STRIPE,
    )


def draw_stopped(size: tuple[int, int]) -> np.ndarray:
    return draw_message(size, "Out of service", "", STOPPED_BACKGROUND)


def _centred_text(
    canvas: np.ndarray,
    text: str,
    area: tuple[float, float, float, float],
    ink: Colour,
    weight: float = 1.0,
) -> None:
    """Text as large as fits the area ``(x, y, w, h)``, centred in it."""
    if not text:
        return
    x, y, width, height = area
    (w1, h1), _ = cv2.getTextSize(text, FONT, 1.0, 1)
    scale = min(width / w1, height / h1)
    thickness = max(1, math.ceil(scale * weight * 1.3))
    # Thicker strokes widen the text a little: shrink it back inside the area.
    (w, h), _ = cv2.getTextSize(text, FONT, scale, thickness)
    if w > width:
        scale *= width / w
        (w, h), _ = cv2.getTextSize(text, FONT, scale, thickness)
    origin = (round(x + (width - w) / 2), round(y + (height + h) / 2))
    cv2.putText(canvas, text, origin, FONT, scale, ink, thickness, cv2.LINE_AA)
