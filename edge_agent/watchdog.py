"""The frame watchdog: a live source read in a thread, reopened when it stalls.

A camera can be unplugged, a stream can die, and a read can hang for tens of
seconds inside OpenCV. The reader thread takes the hang; the frame loop only
waits for frames with a timeout, so it keeps publishing heartbeats meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from edge_agent.heartbeat import utc_now

if TYPE_CHECKING:
    from edge_agent.camera import Frame

log = logging.getLogger(__name__)

STARTING, OK, LOST, RECONNECTING = "starting", "ok", "lost", "reconnecting"
ENDED, STOPPED = "ended", "stopped"

# A read that hung is left to finish on its own (OpenCV gives up after ~30 s);
# past this many such threads no new attempt is started until one returns.
MAX_HUNG_READERS = 3


@dataclass(frozen=True)
class CameraStatus:
    """The source's state as heartbeats, the ``camera`` topic and the screen see it.

    ``state`` is one of ``starting``, ``ok``, ``lost``, ``reconnecting``
    (reopened, waiting for its first frame), ``ended`` (a file or folder
    finished) or ``stopped`` (the agent is shutting down).
    """

    state: str
    source: str
    since: str
    reason: str = ""
    attempts: int = 0
    retry_in_s: float | None = None

    @property
    def delivering(self) -> bool:
        return self.state == OK

    def payload(self) -> dict[str, Any]:
        """The JSON body of the retained ``camera`` topic."""
        body: dict[str, Any] = {
            "state": self.state,
            "source": self.source,
            "since": self.since,
        }
        if self.reason:
            body["reason"] = self.reason
        if self.state in (LOST, RECONNECTING):
            body["attempts"] = self.attempts
        if self.retry_in_s is not None:
            body["retry_in_s"] = round(self.retry_in_s, 1)
        return body


class RawSource(Protocol):
    """One opened session on a source, as ``camera.py`` builds them."""

    def frames(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


class Backoff:
    """Waits that double from ``first`` after each failure, up to ``cap``."""

    def __init__(self, first: float, cap: float) -> None:
        self.first = first
        self.cap = max(cap, first)
        self._next = first

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.cap)
        return delay

    def reset(self) -> None:
        self._next = self.first


class _Reader:
    """One attempt at the source: a thread that opens it and reads until it fails."""

    def __init__(
        self,
        opener: Callable[[], RawSource],
        latest_only: bool,
        opened: RawSource | None = None,
    ) -> None:
        self.frames: queue.Queue[Frame] = queue.Queue(maxsize=1 if latest_only else 2)
        self.started_at = time.monotonic()
        self.opened_at: float | None = None
        self.delivered_at = 0.0  # when the source last handed over a frame
        self.ended = threading.Event()
        self.abandoned = threading.Event()
        self.error = ""
        self._opener = opener
        self._latest_only = latest_only
        self._source = opened
        self.thread = threading.Thread(target=self._run, name="camera-reader")
        self.thread.daemon = True
        self.thread.start()

    def _run(self) -> None:
        try:
            source = self._source or self._opener()
        except Exception as exc:  # any failure to open is retried
            self.error = str(exc) or type(exc).__name__
            self.ended.set()
            return
        self.opened_at = time.monotonic()
        try:
            self.error = self._pump(source)
        except Exception as exc:  # a failing read is a lost source
            self.error = f"read failed: {exc}"
        finally:
            source.close()
            self.ended.set()

    def _pump(self, source: RawSource) -> str:
        """Hand frames on until the source ends or the reader is abandoned."""
        if self.abandoned.is_set():
            return "abandoned"
        for frame in source.frames():
            if self.abandoned.is_set():
                return "abandoned"
            self._deliver(frame)
        return "the source ended"

    def _deliver(self, frame: Frame) -> None:
        self.delivered_at = time.monotonic()
        if self._latest_only:
            with contextlib.suppress(queue.Empty):
                self.frames.get_nowait()  # a live camera: only the newest matters
            self.frames.put_nowait(frame)
            return
        while not self.abandoned.is_set():
            try:
                self.frames.put(frame, timeout=0.2)
                return
            except queue.Full:
                self.delivered_at = time.monotonic()  # the loop is slow, not us


class WatchedSource:
    """A never-ending source whose stalls are noticed and which is reopened.

    ``read`` is called by the frame loop only; every change of ``status``
    happens inside it, so the loop sees changes in order and without locks.
    """

    finite = False
    ended = False

    def __init__(
        self,
        opener: Callable[[], RawSource],
        description: str,
        stall_timeout_s: float,
        open_timeout_s: float,
        backoff: Backoff,
        latest_only: bool = True,
        opened: RawSource | None = None,
    ) -> None:
        self.description = description
        self.status = CameraStatus(STARTING, description, utc_now())
        self._opener = opener
        self._stall_timeout_s = stall_timeout_s
        self._open_timeout_s = open_timeout_s
        self._backoff = backoff
        self._latest_only = latest_only
        self._first: RawSource | None = opened
        self._reader: _Reader | None = None
        self._abandoned: list[_Reader] = []
        self._retry_at = 0.0
        self._last_frame_at = 0.0
        self._lost_at = 0.0
        self._count = 0

    def read(self, timeout: float) -> Frame | None:
        """The next frame, or None when none came within ``timeout`` seconds."""
        self._supervise()
        reader = self._reader
        if reader is None:
            time.sleep(max(0.0, min(timeout, self._retry_at - time.monotonic())))
            self._supervise()
            return None
        try:
            frame = reader.frames.get(timeout=timeout)
        except queue.Empty:
            self._supervise()
            return None
        return self._received(frame)

    def close(self) -> None:
        """Stop reading; a reader stuck in a hung read is left to end by itself."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.abandoned.set()
            reader.thread.join(timeout=2.0)
        self._set(STOPPED)

    def _received(self, frame: Frame) -> Frame:
        self._last_frame_at = time.monotonic()
        if self.status.state != OK:
            if self.status.state in (LOST, RECONNECTING):
                log.info(
                    "%s delivers frames again after %.1f s",
                    self.description,
                    self._last_frame_at - self._lost_at,
                )
            self._backoff.reset()
            self._set(OK)
        frame = replace(frame, index=self._count)
        self._count += 1
        return frame

    def _supervise(self) -> None:
        now = time.monotonic()
        reader = self._reader
        if reader is None:
            if now >= self._retry_at:
                self._start_reader(now)
            return
        if reader.opened_at is not None and self.status.state == LOST:
            self._set(RECONNECTING, "opened; waiting for a frame", self.status.attempts)
        if reader.ended.is_set() and reader.frames.empty():
            # "camera /dev/video0 cannot be opened" is logged as the reason
            # of "camera /dev/video0 lost": say the name once
            reason = reader.error.removeprefix(self.description).strip()
            self._lose(reason or "the source ended", now)
        elif reader.opened_at is None:
            if now - reader.started_at > self._open_timeout_s:
                self._lose(f"not opened within {self._open_timeout_s:g} s", now)
        elif now - max(reader.opened_at, reader.delivered_at) > self._stall_timeout_s:
            self._lose(f"no frame for {self._stall_timeout_s:g} s", now)

    def _start_reader(self, now: float) -> None:
        self._abandoned = [r for r in self._abandoned if r.thread.is_alive()]
        if len(self._abandoned) >= MAX_HUNG_READERS:
            delay = self._backoff.next()
            log.warning(
                "%d reads of %s still hang; next attempt in %.0f s",
                len(self._abandoned),
                self.description,
                delay,
            )
            self._retry_at = now + delay
            return
        opened, self._first = self._first, None
        self._reader = _Reader(self._opener, self._latest_only, opened)

    def _lose(self, reason: str, now: float) -> None:
        reader = self._reader
        assert reader is not None
        reader.abandoned.set()
        self._abandoned.append(reader)
        self._reader = None
        delay = self._backoff.next()
        self._retry_at = now + delay
        attempts = self.status.attempts + 1 if self.status.state != OK else 1
        if self.status.state in (LOST, RECONNECTING):
            # attempts 2, 4, 8, 16...: a camera unplugged for a month must not
            # fill the journal, yet each order of magnitude is told
            log.log(
                logging.INFO if attempts & (attempts - 1) == 0 else logging.DEBUG,
                "%s still lost after %d attempts (%s); retrying in %.1f s",
                self.description,
                attempts,
                reason,
                delay,
            )
        else:
            self._lost_at = now
            log.warning(
                "%s %s (%s); retrying in %.1f s",
                self.description,
                "unavailable" if self.status.state == STARTING else "lost",
                reason,
                delay,
            )
        self._set(LOST, reason, attempts, delay)

    def _set(
        self,
        state: str,
        reason: str = "",
        attempts: int = 0,
        retry_in_s: float | None = None,
    ) -> None:
        since = self.status.since if state == self.status.state else utc_now()
        self.status = CameraStatus(
            state, self.description, since, reason, attempts, retry_in_s
        )
