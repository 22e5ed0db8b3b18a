"""Frame and crop quality: frames that must not vote, and how sharp a face is."""

from __future__ import annotations

import logging

import cv2
import numpy as np

log = logging.getLogger(__name__)

BLACK, COVERED, FROZEN = "black", "covered", "frozen"
PROBLEMS = (BLACK, COVERED, FROZEN)

# Statistics come from a small grey copy: cheap, and sensor noise averages out.
THUMB_WIDTH = 160


class FrameQuality:
    """Tells black, covered-lens and frozen frames apart from usable ones.

    A frozen camera repeats its last picture exactly; a live one never does,
    because sensor noise changes every frame. Repeats shorter than
    ``frozen_after_s`` pass, so a file that duplicates frames is not frozen.
    """

    def __init__(
        self, black_level: float, covered_std: float, frozen_after_s: float
    ) -> None:
        self.black_level = black_level
        self.covered_std = covered_std
        self.frozen_after_s = frozen_after_s
        self._last: np.ndarray | None = None
        self._same_since = 0.0

    def check(self, image: np.ndarray, at: float) -> str | None:
        """The frame's problem (``black``, ``covered``, ``frozen``), or None.

        ``at`` is the frame's monotonic capture time.
        """
        thumb = _thumbnail(image)
        frozen = self._frozen(thumb, at)
        mean, std = cv2.meanStdDev(thumb)
        if float(mean[0][0]) < self.black_level:
            return BLACK
        if float(std[0][0]) < self.covered_std:
            return COVERED
        return FROZEN if frozen else None

    def _frozen(self, thumb: np.ndarray, at: float) -> bool:
        last, self._last = self._last, thumb
        if last is None or last.shape != thumb.shape or not np.array_equal(last, thumb):
            self._same_since = at
            return False
        return at - self._same_since >= self.frozen_after_s


def _thumbnail(image: np.ndarray) -> np.ndarray:
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    height, width = grey.shape[:2]
    if width <= THUMB_WIDTH:
        return grey
    size = (THUMB_WIDTH, max(1, round(height * THUMB_WIDTH / width)))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA)


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian of a face crop: low when blurred or smeared."""
    grey = crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())
