"""Where the kiosk screen goes: a Linux framebuffer, PNG files, or a recording fake.

Without a desktop the console's cursor blinks over the framebuffer unless the
kernel command line has ``vt.global_cursor_default=0``.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edge_agent.errors import DisplayError

log = logging.getLogger(__name__)

SYSFS_GRAPHICS = Path("/sys/class/graphics")


class ScreenSink(Protocol):
    """Shows finished BGR images of exactly ``size`` (width, height)."""

    size: tuple[int, int]
    description: str

    def show(self, image: np.ndarray) -> None: ...

    def close(self) -> None: ...


class FramebufferSink:
    """A Linux framebuffer (``/dev/fbN``) in RGB565 or XRGB8888, no desktop needed."""

    def __init__(self, device: str = "/dev/fb0", sysfs_root: Path = SYSFS_GRAPHICS):
        self.device = device
        self.description = f"framebuffer {device}"
        folder = Path(sysfs_root) / Path(device).name
        # The virtual size equals the visible one unless a program set up panning.
        width, height = _read_ints(folder / "virtual_size", device, 2)
        (self.bits_per_pixel,) = _read_ints(folder / "bits_per_pixel", device, 1)
        (self.stride,) = _read_ints(folder / "stride", device, 1)
        self.size = (width, height)
        if self.bits_per_pixel not in (16, 32):
            raise DisplayError(
                f"framebuffer {device} uses {self.bits_per_pixel} bits per pixel; "
                "only 16 (RGB565) and 32 (XRGB8888) are supported: set "
                "framebuffer_depth=16 or 32 in the Pi's config.txt, or use "
                "display.sink: png"
            )
        if self.stride < width * self.bits_per_pixel // 8:
            raise DisplayError(
                f"framebuffer {device}: stride {self.stride} bytes is shorter than "
                f"a {width}-pixel line; check {folder}"
            )
        self._file = _open_device(device)
        self._buffer = np.zeros((height, self.stride), np.uint8)
        log.info(
            "Screen on %s: %dx%d, %d bits per pixel, %d bytes a line",
            device,
            width,
            height,
            self.bits_per_pixel,
            self.stride,
        )

    def show(self, image: np.ndarray) -> None:
        packed = encode_pixels(image, self.bits_per_pixel)
        self._buffer[:, : packed.shape[1]] = packed
        os.lseek(self._file, 0, os.SEEK_SET)
        view = memoryview(self._buffer.data).cast("B")
        while view:
            # One write unless the kernel takes the frame in pieces.
            written = os.write(self._file, view)
            if written <= 0:
                raise DisplayError(f"framebuffer {self.device} accepts no more bytes")
            view = view[written:]

    def close(self) -> None:
        if self._file >= 0:
            os.close(self._file)
            self._file = -1


def encode_pixels(image: np.ndarray, bits_per_pixel: int) -> np.ndarray:
    """A BGR image as framebuffer bytes, one row of bytes per image row."""
    if bits_per_pixel == 16:
        # OpenCV's BGR565 is the little-endian RGB565 word a framebuffer expects.
        packed = cv2.cvtColor(image, cv2.COLOR_BGR2BGR565)
    else:
        packed = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
    return packed.reshape(image.shape[0], -1)


def _read_ints(path: Path, device: str, count: int) -> list[int]:
    try:
        values = [int(part) for part in path.read_text().strip().split(",")]
    except (OSError, ValueError) as exc:
        raise DisplayError(
            f"framebuffer {device}: cannot read {path} ({exc}); is there a "
            "screen on this device? Set display.device, or display.sink: png "
            "or none"
        ) from exc
    if len(values) != count:
        raise DisplayError(f"framebuffer {device}: unexpected {path}: {values}")
    return values


def _open_device(device: str) -> int:
    try:
        return os.open(device, os.O_WRONLY)
    except PermissionError as exc:
        raise DisplayError(
            f"framebuffer {device} cannot be opened: permission denied; add the "
            "agent's user to the video group, or set display.sink: png or none"
        ) from exc
    except OSError as exc:
        raise DisplayError(
            f"framebuffer {device} cannot be opened: {exc.strerror}; set "
            "display.device to the right /dev/fbN, or display.sink: png or none"
        ) from exc


class PngSink:
    """PNG files in a folder: ``latest.png`` replaced each time, or numbered."""

    def __init__(
        self, folder: Path, size: tuple[int, int], numbered: bool = False
    ) -> None:
        self.folder = Path(folder)
        self.size = size
        self.numbered = numbered
        self.description = f"PNG files in {self.folder}"
        self.written = 0
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DisplayError(
                f"screen folder {self.folder} cannot be created: {exc.strerror}; "
                "set display.png_dir"
            ) from exc
        log.info("Screen as %dx%d %s", size[0], size[1], self.description)

    def show(self, image: np.ndarray) -> None:
        self.written += 1
        if self.numbered:
            _write_png(self.folder / f"screen-{self.written:06d}.png", image)
            return
        # Written aside then renamed, so a viewer never reads half a file.
        partial = self.folder / ".latest.png.partial"
        _write_png(partial, image)
        os.replace(partial, self.folder / "latest.png")

    def close(self) -> None:
        pass


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise DisplayError(f"screen image could not be encoded as PNG for {path}")
    path.write_bytes(encoded.tobytes())


class RecordingSink:
    """A fake screen that keeps a copy of every image it is shown, for tests."""

    def __init__(self, size: tuple[int, int] = (320, 240)) -> None:
        self.size = size
        self.description = "recording sink"
        self.images: list[np.ndarray] = []
        self.closed = False
        self._shown = threading.Condition()

    def show(self, image: np.ndarray) -> None:
        with self._shown:
            self.images.append(image.copy())
            self._shown.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """True once ``count`` images have been shown, False after ``timeout``."""
        with self._shown:
            return self._shown.wait_for(lambda: len(self.images) >= count, timeout)

    def close(self) -> None:
        self.closed = True
