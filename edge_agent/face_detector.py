"""Face detectors: YuNet through OpenCV, and a Haar cascade needing no download."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from edge_agent.crop import Box
from edge_agent.errors import ModelError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Face:
    """One face found in a frame: its box in frame pixels and the detector score."""

    box: Box
    score: float

    @property
    def size(self) -> int:
        """The shorter side of the box, the measure used for minimum face size."""
        return min(self.box[2], self.box[3])


class FaceDetector(Protocol):
    name: str

    def detect(self, frame: np.ndarray) -> list[Face]: ...


class YuNetDetector:
    """YuNet (``cv2.FaceDetectorYN``): fast and accurate down to ~20 px faces."""

    name = "yunet"

    def __init__(
        self,
        model_path: Path,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        top_k: int = 100,
    ) -> None:
        if not model_path.is_file():
            raise ModelError(f"YuNet model {model_path} does not exist")
        try:
            self._net = cv2.FaceDetectorYN.create(
                str(model_path), "", (320, 320), score_threshold, nms_threshold, top_k
            )
        except cv2.error as exc:
            raise ModelError(
                f"YuNet model {model_path} cannot be loaded: {exc}"
            ) from exc
        self._input_size = (320, 320)

    def detect(self, frame: np.ndarray) -> list[Face]:
        height, width = frame.shape[:2]
        if (width, height) != self._input_size:
            self._net.setInputSize((width, height))
            self._input_size = (width, height)
        _, rows = self._net.detect(frame)
        if rows is None:
            return []
        return [_face_in_frame(row[:4], float(row[14]), width, height) for row in rows]


class HaarDetector:
    """OpenCV's frontal-face Haar cascade: no download, weaker on small faces."""

    name = "haar"

    def __init__(self, cascade_path: Path | None = None) -> None:
        bundled = Path(cv2.data.haarcascades)  # type: ignore[attr-defined]
        path = cascade_path or bundled / "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise ModelError(f"Haar cascade {path} cannot be loaded")

    def detect(self, frame: np.ndarray) -> list[Face]:
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        boxes = self._cascade.detectMultiScale(
            grey, scaleFactor=1.1, minNeighbors=5, minSize=(20, 20)
        )
        height, width = frame.shape[:2]
        return [_face_in_frame(box, 1.0, width, height) for box in boxes]


def _face_in_frame(xywh: Any, score: float, width: int, height: int) -> Face:
    x0 = int(max(0.0, float(xywh[0])))
    y0 = int(max(0.0, float(xywh[1])))
    x1 = int(min(float(width), float(xywh[0] + xywh[2])))
    y1 = int(min(float(height), float(xywh[1] + xywh[3])))
    return Face(box=(x0, y0, max(0, x1 - x0), max(0, y1 - y0)), score=score)


def open_detector(
    kind: str, yunet_model: Path | None, score_threshold: float
) -> FaceDetector:
    """The configured detector; YuNet falls back to Haar when its file is absent."""
    if kind == "yunet":
        if yunet_model is not None and yunet_model.is_file():
            detector = YuNetDetector(yunet_model, score_threshold=score_threshold)
            log.info("Face detector: YuNet from %s", yunet_model)
            return detector
        log.warning(
            "YuNet model %s not found; falling back to the Haar cascade, "
            "which misses more faces",
            yunet_model,
        )
    detector_haar = HaarDetector()
    log.info("Face detector: Haar cascade")
    return detector_haar
