"""Frame sources: a camera, a video file, a folder of images, or a stream."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edge_agent.errors import SourceError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "udp://", "tcp://")


@dataclass
class Frame:
    """One picture from the source and where it came from."""

    index: int
    image: np.ndarray
    name: str | None = None  # the file name when the source is a folder
    captured_at: float = field(default_factory=time.monotonic)


class FrameSource(Protocol):
    description: str
    finite: bool

    def frames(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


class FolderSource:
    """Images of a folder (or one image file) replayed in name order at a rate."""

    finite = True

    def __init__(self, path: Path, fps: float = 0.0, loop: bool = False) -> None:
        if path.is_file():
            self._paths = [path]
        else:
            self._paths = sorted(
                p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
            )
        if not self._paths:
            raise SourceError(
                f"image folder {path} holds no images "
                f"({', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        self._period = 1.0 / fps if fps > 0 else 0.0
        self._loop = loop
        self.finite = not loop
        self.description = f"folder {path} ({len(self._paths)} images)"

    def frames(self) -> Iterator[Frame]:
        index = 0
        due = time.monotonic()
        while True:
            for path in self._paths:
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if image is None:
                    log.warning("Image %s cannot be read; skipped", path)
                    continue
                if self._period:
                    due += self._period
                    time.sleep(max(0.0, due - time.monotonic()))
                yield Frame(index, image, path.name)
                index += 1
            if not self._loop:
                return

    def close(self) -> None:
        """Nothing is held open between images."""


class CaptureSource:
    """Anything ``cv2.VideoCapture`` opens: a camera, a video file or a stream."""

    def __init__(self, target: int | str, finite: bool, loop: bool = False) -> None:
        self._target = target
        self.finite = finite and not loop
        self._loop = loop and finite
        self.description = (
            f"camera {target}"
            if isinstance(target, int) or str(target).startswith("/dev/")
            else f"{'file' if finite else 'stream'} {target}"
        )
        self._capture = self._open()

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(self._target)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"{self.description} cannot be opened")
        return capture

    def frames(self) -> Iterator[Frame]:
        index = 0
        while True:
            ok, image = self._capture.read()
            if ok and image is not None:
                yield Frame(index, image)
                index += 1
                continue
            if not self._loop:
                return
            self._capture.release()
            self._capture = self._open()

    def close(self) -> None:
        self._capture.release()


def open_source(uri: str, folder_fps: float = 0.0, loop: bool = False) -> FrameSource:
    """Pick the source kind from the URI: index, device, folder, file or URL."""
    if uri.isdigit():
        return CaptureSource(int(uri), finite=False)
    if uri.startswith(STREAM_SCHEMES):
        return CaptureSource(uri, finite=False)
    path = Path(uri)
    if uri.startswith("/dev/"):
        if not path.exists():
            raise SourceError(f"camera {uri} does not exist: is it plugged in?")
        return CaptureSource(uri, finite=False)
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        if not path.exists():
            raise SourceError(f"image {uri} does not exist")
        return FolderSource(path, folder_fps, loop)
    if not path.is_file():
        raise SourceError(f"source {uri} is no camera, folder, file or stream URL")
    return CaptureSource(uri, finite=True, loop=loop)
