"""The kiosk screen: the agent hands it state, its own thread draws the latest.

The frame loop never waits on the screen. ``update`` only stores the newest
frame; the render thread draws at most ``max_fps`` screens a second, and a
frame replaced before it was drawn is counted as dropped, never queued.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from edge_agent import screen_view
from edge_agent.config import DisplayConfig
from edge_agent.crop import Box
from edge_agent.screen_sink import FramebufferSink, PngSink, ScreenSink

log = logging.getLogger(__name__)

Faces = Sequence[tuple[Box, str]]


class Screen:
    """What the person at the door sees, drawn off the frame loop's thread."""

    def __init__(
        self,
        sink: ScreenSink | None,
        max_fps: float = 10.0,
        idle_after_s: float = 3.0,
        hold_s: float = 4.0,
        camera_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sink = sink
        self.min_interval_s = 1.0 / max_fps
        self.idle_after_s = idle_after_s
        self.hold_s = hold_s
        self.camera_timeout_s = camera_timeout_s
        self.clock = clock
        self.updates = 0
        self.rendered = 0
        self.dropped = 0
        self.failures = 0
        self.scene = "none"
        self._changed = threading.Condition()
        self._frame: np.ndarray | None = None
        self._faces: list[tuple[Box, str]] = []
        self._sequence = 0
        self._pending = False
        self._last_frame_at = clock()
        self._last_face_at: float | None = None
        self._decision: tuple[str, float] | None = None
        self._camera_down = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the render thread; without a sink the screen does nothing."""
        if self.sink is None or self._thread is not None:
            return
        self._last_frame_at = self.clock()
        self._thread = threading.Thread(target=self._run, name="screen", daemon=True)
        self._thread.start()

    def update(self, frame: np.ndarray, faces: Faces) -> None:
        """The newest frame and its faces; the frame must not change afterwards."""
        if self.sink is None:
            return
        with self._changed:
            now = self.clock()
            self.updates += 1
            if self._pending:
                self.dropped += 1
            self._frame = frame
            self._faces = list(faces)
            self._sequence += 1
            self._pending = True
            self._last_frame_at = now
            self._camera_down = False
            if self._faces:
                self._last_face_at = now
            self._changed.notify()

    def decision(self, label: str) -> None:
        """The verdict for the person at the door, shown for ``hold_s`` seconds."""
        if self.sink is None:
            return
        with self._changed:
            now = self.clock()
            self._decision = (label, now)
            self._last_face_at = now
            self._changed.notify()

    def camera_unavailable(self) -> None:
        """Frames have stopped; the next ``update`` clears this."""
        if self.sink is None:
            return
        with self._changed:
            self._camera_down = True
            self._changed.notify()

    def stop(self) -> None:
        """Stop drawing, leave an "Out of service" screen and release the sink."""
        if self.sink is None or self._stopping:
            return
        with self._changed:
            self._stopping = True
            self._changed.notify()
        if self._thread is not None:
            self._thread.join(timeout=10)
        size = self.sink.size
        self._show(lambda: screen_view.draw_stopped(size), "stopped")
        self.sink.close()
        log.info(
            "Screen stopped: %d drawn, %d frames dropped, %d failed",
            self.rendered,
            self.dropped,
            self.failures,
        )

    def _run(self) -> None:
        drawn_key: tuple[object, ...] = ()
        while True:
            with self._changed:
                self._changed.wait_for(
                    lambda: self._pending or self._stopping, timeout=0.2
                )
                if self._stopping:
                    return
                key, draw = self._next_view(self.clock())
                self._pending = False
            if key == drawn_key:
                continue
            started = time.monotonic()
            if self._show(draw, str(key[0])):
                drawn_key = key
            pause = self.min_interval_s - (time.monotonic() - started)
            if pause > 0:
                with self._changed:
                    self._changed.wait_for(lambda: self._stopping, timeout=pause)

    def _next_view(
        self, now: float
    ) -> tuple[tuple[object, ...], Callable[[], np.ndarray]]:
        """What to draw now, and a key that is equal when nothing changed."""
        assert self.sink is not None
        size = self.sink.size
        if self._camera_down or now - self._last_frame_at > self.camera_timeout_s:
            return ("camera_unavailable",), lambda: screen_view.draw_camera_unavailable(
                size
            )
        last_face = self._last_face_at
        frame = self._frame
        if frame is None or last_face is None or now - last_face > self.idle_after_s:
            # The next person must not see the last one's verdict.
            if self._decision and now - self._decision[1] > self.idle_after_s:
                self._decision = None
            return ("idle",), lambda: screen_view.draw_idle(size)
        label = "unknown"
        if self._decision is not None and now - self._decision[1] <= self.hold_s:
            label = self._decision[0]
        faces = self._faces
        return ("live", self._sequence, label), lambda: screen_view.draw_live(
            size, frame, faces, label
        )

    def _show(self, draw: Callable[[], np.ndarray], scene: str) -> bool:
        assert self.sink is not None
        try:
            self.sink.show(draw())
        except Exception as exc:
            self.failures += 1
            if self.failures == 1:
                log.warning(
                    "Screen %s cannot be drawn (%s); the kiosk runs on without it",
                    self.sink.description,
                    exc,
                )
                log.debug("Screen failure", exc_info=True)
            else:
                log.debug("Screen still failing (%d times)", self.failures)
            return False
        self.rendered += 1
        if scene != self.scene:
            log.debug("Screen shows %s", scene)
            self.scene = scene
        return True


def open_sink(config: DisplayConfig) -> ScreenSink | None:
    """The sink ``display.sink`` names, or None for no screen."""
    if config.sink == "framebuffer":
        return FramebufferSink(config.device, Path(config.sysfs_root))
    if config.sink == "png":
        return PngSink(
            Path(config.png_dir), (config.width, config.height), config.png_numbered
        )
    return None


def open_screen(config: DisplayConfig) -> Screen:
    """A started screen for the config; it does nothing when ``display.sink: none``."""
    screen = Screen(
        open_sink(config),
        max_fps=config.max_fps,
        idle_after_s=config.idle_after_s,
        hold_s=config.hold_s,
        camera_timeout_s=config.camera_timeout_s,
    )
    screen.start()
    return screen
