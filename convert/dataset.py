"""The labelled scenes: PASCAL VOC face boxes, split lists, and face crops."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_agent.crop import Box, CropRule
from edge_agent.face_detector import FaceDetector
from edge_agent.geometry import match_boxes
from edge_agent.labels import LABELS

log = logging.getLogger(__name__)

# Annotation names in the dataset, mapped to the product's label names.
ANNOTATION_LABELS = {
    "with_mask": "with_mask",
    "mask_weared_incorrect": "mask_incorrect",
    "without_mask": "without_mask",
}


@dataclass(frozen=True)
class AnnotatedFace:
    box: Box
    label: str


@dataclass(frozen=True)
class Scene:
    """One photo and the faces an annotator boxed in it."""

    name: str
    image_path: Path
    faces: tuple[AnnotatedFace, ...]

    def read(self) -> np.ndarray:
        frame = cv2.imread(str(self.image_path), cv2.IMREAD_COLOR)
        if frame is None:
            raise FileNotFoundError(f"cannot read image {self.image_path}")
        return frame


def read_annotation(path: Path) -> tuple[str, tuple[AnnotatedFace, ...]]:
    """The image file name and labelled faces of one VOC annotation file."""
    root = ET.parse(path).getroot()  # noqa: S314 - trusted local dataset
    filename = root.findtext("filename") or f"{path.stem}.png"
    faces = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in ANNOTATION_LABELS:
            raise ValueError(f"{path}: unknown label {name!r}")
        bnd = obj.find("bndbox")
        if bnd is None:
            raise ValueError(f"{path}: object without bndbox")
        x0, y0, x1, y1 = (
            round(float(bnd.findtext(key) or "nan"))
            for key in ("xmin", "ymin", "xmax", "ymax")
        )
        box = (x0, y0, max(1, x1 - x0), max(1, y1 - y0))
        faces.append(AnnotatedFace(box=box, label=ANNOTATION_LABELS[name]))
    return filename, tuple(faces)


def load_split(root: Path, split: str, limit: int | None = None) -> list[Scene]:
    """The scenes named in ``splits/<split>.txt`` under the dataset root."""
    names = (root / "splits" / f"{split}.txt").read_text().split()
    if limit is not None:
        names = names[:limit]
    scenes = []
    for name in names:
        filename, faces = read_annotation(root / "annotations" / f"{name}.xml")
        scenes.append(Scene(name, root / "images" / filename, faces))
    log.info(
        "Split %s: %d scenes, %d faces",
        split,
        len(scenes),
        sum(len(s.faces) for s in scenes),
    )
    return scenes


def iter_crops(
    scenes: list[Scene], rule: CropRule, min_size: int = 1
) -> Iterator[tuple[np.ndarray, int, Scene]]:
    """Every annotated face of every scene, cut with the agent's crop rule."""
    for scene in scenes:
        frame = scene.read()
        for face in scene.faces:
            if min(face.box[2], face.box[3]) < min_size:
                continue
            yield rule.cut(frame, face.box), LABELS.index(face.label), scene


def crops_array(
    scenes: list[Scene], rule: CropRule, min_size: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """All annotated crops of the scenes as a uint8 array and their label indices."""
    crops, labels = [], []
    for crop, label, _ in iter_crops(scenes, rule, min_size):
        crops.append(crop)
        labels.append(label)
    if not crops:
        empty = np.zeros((0, rule.size, rule.size, 3), np.uint8)
        return empty, np.zeros(0, np.int64)
    return np.stack(crops), np.asarray(labels, np.int64)


def detector_crops(
    scenes: list[Scene], detector: FaceDetector, rule: CropRule, min_iou: float
) -> tuple[np.ndarray, np.ndarray]:
    """Crops cut around the detector's boxes for annotated faces it found.

    The agent classifies detector boxes, which sit differently on a face than an
    annotator's; training on both teaches the model what it will see.
    """
    crops, labels = [], []
    for scene in scenes:
        frame = scene.read()
        found = [face.box for face in detector.detect(frame)]
        pairs = match_boxes(found, [face.box for face in scene.faces], min_iou)
        for ai, di in pairs.items():
            crops.append(rule.cut(frame, found[di]))
            labels.append(LABELS.index(scene.faces[ai].label))
    if not crops:
        return np.zeros((0, rule.size, rule.size, 3), np.uint8), np.zeros(0, np.int64)
    return np.stack(crops), np.asarray(labels, np.int64)
