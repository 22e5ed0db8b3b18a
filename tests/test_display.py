"""The kiosk screen: framebuffer bytes, PNG files, and which screen shows when."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import DATASET

from convert.dataset import Scene, load_split
from edge_agent import screen_view
from edge_agent.config import DisplayConfig
from edge_agent.crop import Box
from edge_agent.display import Screen, open_screen
from edge_agent.errors import DisplayError
from edge_agent.screen_sink import FramebufferSink, PngSink, RecordingSink
from edge_agent.screen_view import Colour


def fake_framebuffer(
    tmp_path: Path, size: tuple[int, int], bpp: int, stride: int
) -> tuple[Path, Path]:
    """A plain file standing in for /dev/fb0 and a sysfs folder describing it."""
    sysfs = tmp_path / "sys"
    (sysfs / "fb0").mkdir(parents=True)
    (sysfs / "fb0" / "virtual_size").write_text(f"{size[0]},{size[1]}\n")
    (sysfs / "fb0" / "bits_per_pixel").write_text(f"{bpp}\n")
    (sysfs / "fb0" / "stride").write_text(f"{stride}\n")
    device = tmp_path / "fb0"
    device.write_bytes(b"\xab" * (stride * size[1]))
    return device, sysfs


def decode(device: Path, size: tuple[int, int], bpp: int, stride: int) -> np.ndarray:
    """The framebuffer file as a BGR image, decoded independently of the sink."""
    width, height = size
    rows = np.frombuffer(device.read_bytes(), np.uint8).reshape(height, stride)
    if bpp == 32:
        return rows[:, : width * 4].reshape(height, width, 4)[..., :3].copy()
    words = rows[:, : width * 2].copy().view("<u2").astype(np.uint32)
    red = (words >> 11 & 31) * 255 // 31
    green = (words >> 5 & 63) * 255 // 63
    blue = (words & 31) * 255 // 31
    return np.dstack([blue, green, red]).astype(np.uint8)


def close_to(pixel: np.ndarray, colour: tuple[int, int, int], tolerance: int) -> bool:
    return bool(np.all(np.abs(pixel.astype(int) - np.array(colour)) <= tolerance))


def isolated_faces(scene: Scene, margin: int = 12) -> dict[str, Box]:
    """One face per label whose top edge's middle is clear of every other face."""
    chosen: dict[str, Box] = {}
    for face in scene.faces:
        x, y, w, _ = face.box
        middle = (x + w / 2, y)
        clear = all(
            not (
                ox - margin <= middle[0] <= ox + ow + margin
                and oy - margin <= middle[1] <= oy + oh + margin
            )
            for ox, oy, ow, oh in (f.box for f in scene.faces if f is not face)
        )
        if clear and w >= 16 and face.label not in chosen:
            chosen[face.label] = face.box
    return chosen


@pytest.fixture(scope="module")
def scene() -> Scene:
    """A real photo with isolated faces of at least two labels."""
    for candidate in load_split(DATASET, "val"):
        if len(isolated_faces(candidate)) >= 2:
            return candidate
    raise AssertionError("no val scene with two isolated labelled faces")


@pytest.mark.parametrize(
    ("bpp", "size", "stride"),
    [(16, (640, 480), 640 * 2 + 64), (32, (800, 480), 800 * 4 + 128)],
)
def test_framebuffer_shows_boxes_and_banner(
    tmp_path: Path, scene: Scene, bpp: int, size: tuple[int, int], stride: int
) -> None:
    device, sysfs = fake_framebuffer(tmp_path, size, bpp, stride)
    sink = FramebufferSink(str(device), sysfs)
    frame = scene.read()
    faces = isolated_faces(scene)
    sink.show(
        screen_view.draw_live(
            size, frame, [(box, label) for label, box in faces.items()], "without_mask"
        )
    )
    sink.close()

    assert device.stat().st_size == stride * size[1]
    shown = decode(device, size, bpp, stride)
    tolerance = 8 if bpp == 16 else 0
    width, height = size
    banner_top = height - round(height * 0.24)
    scale = min(width / frame.shape[1], banner_top / frame.shape[0])
    left = (width - round(frame.shape[1] * scale)) // 2
    top = (banner_top - round(frame.shape[0] * scale)) // 2
    for label, (x, y, w, _) in faces.items():
        edge = shown[top + round(y * scale), left + round((x + w / 2) * scale)]
        assert close_to(edge, screen_view.COLOURS[label], tolerance), label
    red = screen_view.COLOURS["without_mask"]
    for corner in [(banner_top + 2, 2), (height - 2, width - 3)]:
        assert close_to(shown[corner], red, tolerance)
    assert not close_to(shown[banner_top - 3, width // 2], red, 40)


def test_framebuffer_rows_follow_the_stride(tmp_path: Path) -> None:
    size, stride = (64, 8), 64 * 4 + 48
    device, sysfs = fake_framebuffer(tmp_path, size, 32, stride)
    image = np.zeros((8, 64, 3), np.uint8)
    image[:, 0] = (10, 20, 30)  # a marker at the start of every row
    image[:, -1] = (200, 100, 50)  # and at its end
    sink = FramebufferSink(str(device), sysfs)
    sink.show(image)
    sink.close()

    rows = np.frombuffer(device.read_bytes(), np.uint8).reshape(8, stride)
    for row in rows:
        assert list(row[:4]) == [10, 20, 30, 255]
        assert list(row[63 * 4 : 64 * 4]) == [200, 100, 50, 255]


def test_missing_framebuffer_names_device_and_remedy(tmp_path: Path) -> None:
    device, sysfs = fake_framebuffer(tmp_path, (64, 48), 16, 128)
    device.unlink()
    with pytest.raises(DisplayError) as caught:
        FramebufferSink(str(device), sysfs)
    assert f"framebuffer {device} cannot be opened" in str(caught.value)
    assert "display.sink: png or none" in str(caught.value)


def test_framebuffer_without_sysfs_or_with_24_bits_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DisplayError, match="virtual_size"):
        FramebufferSink("/dev/fb7", tmp_path)
    device, sysfs = fake_framebuffer(tmp_path, (64, 48), 24, 64 * 3)
    with pytest.raises(DisplayError, match="24 bits per pixel"):
        FramebufferSink(str(device), sysfs)


def test_png_sink_replaces_latest_or_numbers_each(tmp_path: Path) -> None:
    first = np.full((30, 40, 3), (0, 0, 255), np.uint8)
    second = np.full((30, 40, 3), (0, 255, 0), np.uint8)
    latest = PngSink(tmp_path / "latest", (40, 30))
    latest.show(first)
    latest.show(second)
    assert sorted(p.name for p in (tmp_path / "latest").iterdir()) == ["latest.png"]
    read = cv2.imread(str(tmp_path / "latest" / "latest.png"))
    assert np.array_equal(read, second)

    numbered = PngSink(tmp_path / "all", (40, 30), numbered=True)
    numbered.show(first)
    numbered.show(second)
    names = sorted(p.name for p in (tmp_path / "all").iterdir())
    assert names == ["screen-000001.png", "screen-000002.png"]
    assert np.array_equal(cv2.imread(str(tmp_path / "all" / names[0])), first)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def screen(clock: Clock) -> Iterator[Screen]:
    running = Screen(
        RecordingSink((320, 240)),
        max_fps=50,
        idle_after_s=3,
        hold_s=4,
        camera_timeout_s=5,
        clock=clock,
    )
    running.start()
    yield running
    running.stop()


def recorded(screen: Screen) -> RecordingSink:
    assert isinstance(screen.sink, RecordingSink)
    return screen.sink


def shown_after(
    screen: Screen, start: int, pixel: tuple[int, int], colour: Colour
) -> bool:
    """Whether an image drawn after the first ``start`` has ``colour`` at ``pixel``."""
    sink = recorded(screen)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if any(close_to(i[pixel], colour, 0) for i in sink.images[start:]):
            return True
        time.sleep(0.01)
    return False


FACE: list[tuple[Box, str]] = [((60, 40, 40, 40), "with_mask")]
BANNER = (236, 5)  # a pixel in the banner of a 320 x 240 screen
CORNER = (1, 1)
GREEN = screen_view.COLOURS["with_mask"]
GREY = screen_view.COLOURS["unknown"]


def test_live_then_idle_forgets_the_decision(screen: Screen, clock: Clock) -> None:
    frame = np.full((120, 160, 3), 90, np.uint8)
    screen.update(frame, FACE)
    screen.decision("with_mask")
    assert shown_after(screen, 0, BANNER, GREEN)

    start = len(recorded(screen).images)
    clock.now += 3.5
    screen.update(frame, [])
    assert shown_after(screen, start, CORNER, screen_view.IDLE_BACKGROUND)

    start = len(recorded(screen).images)
    screen.update(frame, FACE)
    assert shown_after(screen, start, BANNER, GREY)
    assert not any(
        close_to(i[BANNER], GREEN, 0) for i in recorded(screen).images[start:]
    )


def test_camera_unavailable_until_frames_return(screen: Screen, clock: Clock) -> None:
    frame = np.full((120, 160, 3), 90, np.uint8)
    screen.update(frame, FACE)
    assert shown_after(screen, 0, BANNER, GREY)
    start = len(recorded(screen).images)
    screen.camera_unavailable()
    assert shown_after(screen, start, CORNER, screen_view.CAMERA_STRIPE)

    start = len(recorded(screen).images)
    screen.update(frame, FACE)
    assert shown_after(screen, start, BANNER, GREY)

    start = len(recorded(screen).images)
    clock.now += 6  # no frame for longer than camera_timeout_s
    assert shown_after(screen, start, CORNER, screen_view.CAMERA_STRIPE)
    assert screen.scene == "camera_unavailable"


def test_stop_leaves_out_of_service_and_closes(clock: Clock) -> None:
    sink = RecordingSink((320, 240))
    screen = Screen(sink, clock=clock)
    screen.start()
    screen.stop()
    expected = screen_view.draw_stopped((320, 240))
    assert np.array_equal(sink.images[-1], expected)
    assert sink.closed


class GatedSink(RecordingSink):
    """Holds the first image in ``show`` until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__((320, 240))
        self.entered = threading.Event()
        self.gate = threading.Event()

    def show(self, image: np.ndarray) -> None:
        self.entered.set()
        assert self.gate.wait(10)
        super().show(image)


def test_render_thread_drops_old_frames(clock: Clock) -> None:
    sink = GatedSink()
    screen = Screen(sink, max_fps=50, clock=clock)
    screen.start()
    frames = [
        np.full((120, 160, 3), (i * 5, 250 - i * 5, 7), np.uint8) for i in range(50)
    ]
    screen.update(frames[0], FACE)
    assert sink.entered.wait(10)
    for frame in frames[1:]:
        screen.update(frame, FACE)  # the first is still being shown
    sink.gate.set()
    assert sink.wait_for(2)
    screen.stop()

    live = sink.images[:-1]  # the last is the out-of-service screen
    assert screen.updates == 50
    assert len(live) == 2 < screen.updates
    assert screen.dropped == 48
    middle = (150, 160)  # inside the letterboxed frame, clear of the box
    assert list(live[0][middle]) == [0, 250, 7]
    assert list(live[-1][middle]) == [245, 5, 7]


def test_no_sink_does_nothing(tmp_path: Path) -> None:
    screen = open_screen(DisplayConfig(sink="none"))
    screen.update(np.zeros((10, 10, 3), np.uint8), FACE)
    screen.decision("with_mask")
    screen.camera_unavailable()
    screen.stop()
    assert screen.sink is None
    assert (screen.updates, screen.rendered) == (0, 0)


def test_open_screen_png_from_config(tmp_path: Path) -> None:
    config = DisplayConfig(sink="png", png_dir=str(tmp_path), width=200, height=150)
    screen = open_screen(config)
    screen.stop()
    shown = cv2.imread(str(tmp_path / "latest.png"))
    assert np.array_equal(shown, screen_view.draw_stopped((200, 150)))
