"""Camera-like clips made from labelled still scenes, with their ground truth.

The tracker and the decision rule need video of people, and the dataset holds
photos. A clip shows each photo for a while, drifting and zooming a little as
if its people walked up to the kiosk, with black, empty or covered-lens frames
between them. The annotated boxes move with the picture, so each frame keeps
its ground truth, and each event can be matched to the person it is about.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from convert.dataset import AnnotatedFace, Scene, read_annotation
from edge_agent.crop import Box
from edge_agent.face_detector import FaceDetector
from edge_agent.geometry import iou, match_boxes

log = logging.getLogger(__name__)

CANVAS = (640, 480)
BACKGROUND = (70, 70, 70)
GAP_KINDS = ("black", "empty", "covered")


@dataclass
class Person:
    """One annotated face as it appears in a clip: its class and box per frame."""

    label: str
    scene: str
    boxes: dict[int, Box] = field(default_factory=dict)

    @property
    def first_frame(self) -> int:
        return min(self.boxes)

    @property
    def smallest(self) -> int:
        return min(min(box[2], box[3]) for box in self.boxes.values())


@dataclass
class Clip:
    """The ground truth of a written clip."""

    path: Path
    fps: float
    frames: int = 0
    persons: list[Person] = field(default_factory=list)
    gaps: dict[str, list[int]] = field(default_factory=dict)
    frozen: list[int] = field(default_factory=list)

    def person_at(self, index: int, box: Box, min_iou: float = 0.3) -> int | None:
        """The person whose box in frame ``index`` overlaps ``box`` best."""
        best, chosen = min_iou, None
        for number, person in enumerate(self.persons):
            if index in person.boxes and iou(person.boxes[index], box) >= best:
                best, chosen = iou(person.boxes[index], box), number
        return chosen

    def match(
        self, events: list[dict[str, Any]]
    ) -> tuple[dict[int, list[dict[str, Any]]], list[dict[str, Any]]]:
        """Events per person number, and the events matching nobody."""
        per_person: dict[int, list[dict[str, Any]]] = {
            n: [] for n in range(len(self.persons))
        }
        strays = []
        for event in events:
            number = self.person_at(event["frame"]["index"], tuple(event["box"]))
            if number is None:
                strays.append(event)
            else:
                per_person[number].append(event)
        return per_person, strays


def clear_scenes(
    root: Path, split: str, min_face_px: int, max_faces: int = 4
) -> list[Scene]:
    """Scenes of a split whose every face is at least ``min_face_px`` wide."""
    chosen = []
    for name in (root / "splits" / f"{split}.txt").read_text().split():
        filename, faces = read_annotation(root / "annotations" / f"{name}.xml")
        if 0 < len(faces) <= max_faces and all(
            min(face.box[2], face.box[3]) >= min_face_px for face in faces
        ):
            chosen.append(Scene(name, root / "images" / filename, faces))
    return chosen


def found_by(detector: FaceDetector, scene: Scene, min_iou: float = 0.4) -> bool:
    """Whether the detector finds every annotated face of the still scene."""
    found = [face.box for face in detector.detect(scene.read())]
    pairs = match_boxes(found, [face.box for face in scene.faces], min_iou)
    return len(pairs) == len(scene.faces)


class ClipWriter:
    """Writes an MJPG clip frame by frame and records who is where."""

    def __init__(self, path: Path, fps: float = 15.0, size: tuple[int, int] = CANVAS):
        self.size = size
        self.clip = Clip(path, fps, gaps={kind: [] for kind in GAP_KINDS})
        fourcc = cv2.VideoWriter_fourcc(*"MJPG")  # type: ignore[attr-defined]
        self._writer = cv2.VideoWriter(str(path), fourcc, fps, size)
        if not self._writer.isOpened():
            raise OSError(f"cannot write video {path}")
        self._last: np.ndarray | None = None
        self._texture = _texture(size, np.random.default_rng(len(str(path))))

    def _write(self, image: np.ndarray) -> int:
        self._writer.write(image)
        self._last = image
        self.clip.frames += 1
        return self.clip.frames - 1

    def scene(
        self,
        scene: Scene,
        frames: int,
        rng: np.random.Generator,
        zoom: float = 0.15,
        drift: float = 0.04,
    ) -> list[Person]:
        """The scene for ``frames`` frames, zooming in and drifting sideways."""
        image = scene.read()
        width, height = self.size
        fit = 0.8 * min(width / image.shape[1], height / image.shape[0])
        direction = rng.uniform(-1.0, 1.0, 2) * drift * np.array([width, height])
        persons = [Person(face.label, scene.name) for face in scene.faces]
        for step in range(frames):
            t = step / max(1, frames - 1)
            scale = fit * (1.0 + zoom * t)
            shift_x = (width - scale * image.shape[1]) / 2 + direction[0] * t
            shift_y = (height - scale * image.shape[0]) / 2 + direction[1] * t
            matrix = np.array([[scale, 0, shift_x], [0, scale, shift_y]], np.float32)
            index = self._write(self._warp(image, matrix))
            for person, face in zip(persons, scene.faces, strict=True):
                box = _moved(face.box, scale, shift_x, shift_y, self.size)
                if box is not None:
                    person.boxes[index] = box
        persons = [person for person in persons if person.boxes]
        self.clip.persons.extend(persons)
        return persons

    def portrait(
        self, scene: Scene, face: AnnotatedFace, frames: int, face_px: int = 140
    ) -> Person:
        """One face and its surroundings, centred and swaying gently.

        Two portraits in a row look like one person whose mask changed.
        """
        image = scene.read()
        scale = face_px / max(face.box[2], face.box[3])
        width, height = self.size
        centre_x = face.box[0] + face.box[2] / 2
        centre_y = face.box[1] + face.box[3] / 2
        person = Person(face.label, scene.name)
        for _ in range(frames):
            sway = 6.0 * np.sin(self.clip.frames / 5.0)
            shift_x = width / 2 - scale * centre_x + sway
            shift_y = height / 2 - scale * centre_y
            matrix = np.array([[scale, 0, shift_x], [0, scale, shift_y]], np.float32)
            warped = self._warp(image, matrix)
            # Only the chosen face: a square mask hides the scene's other people.
            side = int(face_px * 1.8)
            keep = np.zeros(warped.shape[:2], np.uint8)
            cx, cy = int(width / 2 + sway), int(height / 2)
            keep[
                max(0, cy - side // 2) : cy + side // 2,
                max(0, cx - side // 2) : cx + side // 2,
            ] = 1
            warped[keep == 0] = BACKGROUND
            index = self._write(warped)
            box = _moved(face.box, scale, shift_x, shift_y, self.size)
            if box is not None:
                person.boxes[index] = box
        self.clip.persons.append(person)
        return person

    def gap(self, kind: str, frames: int) -> None:
        """Frames with nobody: ``black``, ``empty`` (a plain wall) or ``covered``."""
        width, height = self.size
        for _ in range(frames):
            if kind == "black":
                image = np.zeros((height, width, 3), np.uint8)
            elif kind == "covered":
                image = np.full((height, width, 3), (40, 50, 110), np.uint8)
            elif kind == "empty":
                shift = 3 * self.clip.frames
                image = self._texture[:, shift % width : shift % width + width].copy()
            else:
                raise ValueError(f"unknown gap kind {kind!r}")
            self.clip.gaps[kind].append(self._write(image))

    def freeze(self, frames: int) -> None:
        """The last frame again and again, as a stuck camera delivers it."""
        if self._last is None:
            raise ValueError("nothing to freeze yet")
        for _ in range(frames):
            self.clip.frozen.append(self._write(self._last))

    def close(self) -> Clip:
        self._writer.release()
        return self.clip

    def _warp(self, image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(
            image,
            matrix,
            self.size,
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=BACKGROUND,
        )


def _moved(
    box: Box, scale: float, shift_x: float, shift_y: float, size: tuple[int, int]
) -> Box | None:
    """The box after the warp, or None when any of it leaves the frame."""
    x0, y0 = box[0] * scale + shift_x, box[1] * scale + shift_y
    x1, y1 = x0 + box[2] * scale, y0 + box[3] * scale
    if x0 < 0 or y0 < 0 or x1 > size[0] or y1 > size[1]:
        return None
    return round(x0), round(y0), round(x1 - x0), round(y1 - y0)


def _texture(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A blotchy wall twice the frame's width, for empty frames to slide over."""
    width, height = size
    coarse = rng.uniform(40, 200, (height // 24 + 1, width // 12 + 1, 3))
    wall = cv2.resize(coarse.astype(np.uint8), (2 * width, height))
    return cv2.GaussianBlur(wall, (0, 0), 6)
