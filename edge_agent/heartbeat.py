"""Running counts of the agent's work, and the heartbeat built from them."""

from __future__ import annotations

import logging
import statistics
import time
from collections import Counter, deque
from typing import Any

log = logging.getLogger(__name__)


class Stats:
    """What the loop has done so far: frames, faces, events and timings."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.frames = 0
        self.faces = 0
        self.small_faces = 0
        self.verdicts: Counter[str] = Counter()
        self.tracks = 0
        self.undecided_tracks = 0
        self.decisions: Counter[str] = Counter()
        self.unknown_votes: Counter[str] = Counter()  # by doubt: small, blurred...
        self.rejected_frames: Counter[str] = Counter()  # black, covered, frozen
        self.failed_frames = 0  # frames whose processing raised
        self.camera_state = "starting"
        self._frame_times: deque[float] = deque(maxlen=120)
        self._latencies: deque[float] = deque(maxlen=500)

    def frame_done(self) -> None:
        self.frames += 1
        self._frame_times.append(time.monotonic())

    def classified(self, verdict: str, latency_ms: float) -> None:
        self.faces += 1
        self.verdicts[verdict] += 1
        self._latencies.append(latency_ms)

    def uptime(self) -> float:
        return time.monotonic() - self.started

    def fps(self) -> float:
        """Frames per second over the last ~120 frames."""
        times = self._frame_times
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def overall_fps(self) -> float:
        elapsed = self.uptime()
        return self.frames / elapsed if elapsed > 0 else 0.0

    def latency_ms(self) -> float:
        """Median classifier invoke time over recent faces."""
        return statistics.median(self._latencies) if self._latencies else 0.0

    def heartbeat(
        self, device: str, model_version: str, events_published: int
    ) -> dict[str, Any]:
        return {
            "device": device,
            "time": utc_now(),
            "uptime_s": round(self.uptime(), 1),
            "frames": self.frames,
            "fps": round(self.fps(), 2),
            "faces": self.faces,
            "small_faces": self.small_faces,
            "classifier_latency_ms": round(self.latency_ms(), 3),
            "events_published": events_published,
            "verdicts": dict(self.verdicts),
            "tracks": self.tracks,
            "undecided_tracks": self.undecided_tracks,
            "decisions": dict(self.decisions),
            "unknown_votes": dict(self.unknown_votes),
            "rejected_frames": {
                kind: self.rejected_frames[kind]
                for kind in ("black", "covered", "frozen")
            },
            "failed_frames": self.failed_frames,
            "model_version": model_version,
            "camera": self.camera_state,
        }


def utc_now() -> str:
    """The current UTC time in ISO-8601 with milliseconds and a ``Z``."""
    return utc_iso(time.time())


def utc_at(moment: float) -> str:
    """The UTC time, as ``utc_now`` writes it, of a ``time.monotonic()`` reading."""
    return utc_iso(time.time() - (time.monotonic() - moment))


def utc_iso(now: float) -> str:
    """A Unix time in ISO-8601 UTC with milliseconds and a ``Z``."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    return f"{stamp}.{int(now % 1 * 1000):03d}Z"
