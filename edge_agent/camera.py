"""Frame sources: a camera, a video file, a folder of images, or a stream.

A camera or stream is read through the frame watchdog and never ends: when it
stops delivering it is reported lost and reopened. A file or folder is replayed
once, or watched the same way when ``source.loop`` makes it endless.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from edge_agent.config import SourceConfig
from edge_agent.errors import SourceError
from edge_agent.heartbeat import utc_now
from edge_agent.watchdog import (
    ENDED,
    OK,
    STARTING,
    STOPPED,
    Backoff,
    CameraStatus,
    RawSource,
    WatchedSource,
)

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
    """What the frame loop reads: frames with a timeout, and the camera's state."""

    description: str
    finite: bool
    status: CameraStatus

    @property
    def ended(self) -> bool: ...

    def read(self, timeout: float) -> Frame | None: ...

    def close(self) -> None: ...


class FolderSource:
    """Images of a folder (or one image file) replayed in name order at a rate."""

    finite = True

    def __init__(self, path: Path, fps: float = 0.0, loop: bool = False) -> None:
        try:
            self._paths = (
                [path]
                if path.is_file()
                else sorted(
                    p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
                )
            )
        except OSError as exc:
            raise SourceError(f"image folder {path} cannot be read: {exc}") from exc
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
            shown = index
            for path in self._paths:
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if image is None:
                    log.warning("Image %s cannot be read; skipped", path)
                    continue
                if self._period:
                    due = max(due + self._period, time.monotonic())
                    time.sleep(max(0.0, due - time.monotonic()))
                yield Frame(index, image, path.name)
                index += 1
            if not self._loop or index == shown:
                return  # a pass without one readable image ends a looped folder

    def close(self) -> None:
        """Nothing is held open between images."""


class CaptureSource:
    """Anything ``cv2.VideoCapture`` opens: a camera, a video file or a stream."""

    def __init__(self, target: int | str, finite: bool, loop: bool = False) -> None:
        self._target = target
        self.finite = finite and not loop
        self._loop = loop and finite
        self.description = describe_capture(target, finite)
        self._capture = self._open()

    def _open(self) -> cv2.VideoCapture:
        device = isinstance(self._target, str) and self._target.startswith("/dev/")
        if device and not Path(str(self._target)).exists():
            raise SourceError(f"{self.description} does not exist: plugged in?")
        capture = cv2.VideoCapture(self._target)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"{self.description} cannot be opened")
        return capture

    def frames(self) -> Iterator[Frame]:
        index = opened_at = 0
        while True:
            ok, image = self._capture.read()
            if ok and image is not None:
                yield Frame(index, image)
                index += 1
                continue
            if not self._loop or index == opened_at:
                return  # the end, or a file that gave no frame since it was opened
            self._capture.release()
            self._capture = self._open()
            opened_at = index

    def close(self) -> None:
        self._capture.release()


class ReplaySource:
    """A file or folder read once, frame by frame, in the loop's own thread."""

    finite = True

    def __init__(self, source: FolderSource | CaptureSource) -> None:
        self.description = source.description
        self.status = CameraStatus(STARTING, self.description, utc_now())
        self._source = source
        self._frames = source.frames()
        self._ended = False

    @property
    def ended(self) -> bool:
        return self._ended

    def read(self, timeout: float) -> Frame | None:
        """The next frame; None once the file or folder is done."""
        frame = next(self._frames, None)
        if frame is None:
            self._ended = True
            self._set(ENDED)
        elif self.status.state != OK:
            self._set(OK)
        return frame

    def close(self) -> None:
        self._source.close()
        self._set(STOPPED)

    def _set(self, state: str) -> None:
        if state != self.status.state:
            self.status = CameraStatus(state, self.description, utc_now())


def describe_capture(target: int | str, finite: bool) -> str:
    """A name for logs and the retained ``camera`` topic, without credentials."""
    if isinstance(target, int) or str(target).startswith("/dev/"):
        return f"camera {target}"
    return f"{'file' if finite else 'stream'} {without_credentials(str(target))}"


def without_credentials(uri: str) -> str:
    """The URI with any ``user:password@`` replaced, safe to log and publish."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


def open_source(uri: str, config: SourceConfig) -> FrameSource:
    """Pick the source kind from the URI: index, device, folder, file or URL.

    A camera or stream that is missing now is retried in the background; a
    missing file or folder is refused at once.
    """
    if uri.isdigit() or uri.startswith(STREAM_SCHEMES) or uri.startswith("/dev/"):
        target: int | str = int(uri) if uri.isdigit() else uri
        return _watched(
            lambda: CaptureSource(target, finite=False),
            describe_capture(target, finite=False),
            config,
        )

    path = Path(uri)
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        if not path.exists():
            raise SourceError(f"image {uri} does not exist")
        folder = FolderSource(path, config.folder_fps, config.loop)
        if not config.loop:
            return ReplaySource(folder)
        return _watched(
            lambda: FolderSource(path, config.folder_fps, loop=True),
            folder.description,
            config,
            opened=folder,
            # a slow slideshow is no stalled camera
            min_stall_s=3.0 / config.folder_fps if config.folder_fps else 0.0,
        )

    if not path.is_file():
        raise SourceError(
            f"source {uri} does not exist (give a camera index, /dev/videoN, a "
            "video file, an image folder or a stream URL)"
        )
    video = CaptureSource(uri, finite=True, loop=config.loop)
    if not config.loop:
        return ReplaySource(video)
    return _watched(
        lambda: CaptureSource(uri, finite=True, loop=True),
        video.description,
        config,
        opened=video,
    )


def _watched(
    opener: Callable[[], RawSource],
    description: str,
    config: SourceConfig,
    opened: RawSource | None = None,
    min_stall_s: float = 0.0,
) -> WatchedSource:
    return WatchedSource(
        opener,
        description,
        stall_timeout_s=max(config.stall_timeout_s, min_stall_s),
        open_timeout_s=config.open_timeout_s,
        backoff=Backoff(config.reconnect_min_s, config.reconnect_max_s),
        # a camera's old frames are worthless; a looped file's are all wanted
        latest_only=opened is None,
        opened=opened,
    )
