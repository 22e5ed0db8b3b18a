"""Print how fast a lost camera is noticed and how fast frames resume.

The camera is an MJPEG stream over HTTP on 127.0.0.1 (what an IP camera
serves), read through the agent's own source and frame watchdog with the
device defaults. Two failures, each repeated:

- unplugged: the stream's connections close and the port refuses;
- hung: the connection stays open but sends nothing, so OpenCV's read blocks.

Usage: python bench/camera_recovery.py [--trials N] [--down-s SECONDS]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from loopback_camera import MjpegCamera  # noqa: E402

from edge_agent.agent import LOOP_TICK_S  # noqa: E402
from edge_agent.camera import FrameSource, open_source  # noqa: E402
from edge_agent.config import SourceConfig  # noqa: E402
from edge_agent.watchdog import LOST, OK  # noqa: E402


def wait_state(source: FrameSource, state: str, limit_s: float = 120.0) -> float:
    """Read as the frame loop does until ``state``; the monotonic time it came."""
    deadline = time.monotonic() + limit_s
    while source.status.state != state:
        if time.monotonic() > deadline:
            raise SystemExit(f"camera never became {state}: {source.status}")
        source.read(LOOP_TICK_S)
    return time.monotonic()


def trial(
    source: FrameSource,
    fail: Callable[[], None],
    repair: Callable[[], None],
    down_s: float,
) -> tuple[float, float]:
    """(seconds to notice the failure, seconds from repair to the first frame)."""
    wait_state(source, OK)
    fail()
    failed_at = time.monotonic()  # stop() returns once every stream is closed
    noticed = wait_state(source, LOST) - failed_at
    while time.monotonic() < failed_at + down_s:
        source.read(LOOP_TICK_S)
    repaired_at = time.monotonic()
    repair()
    return noticed, wait_state(source, OK) - repaired_at


def report(name: str, results: list[tuple[float, float]]) -> None:
    for label, values in (
        ("detect", [r[0] for r in results]),
        ("resume", [r[1] for r in results]),
    ):
        print(
            f"  {name:<9} {label}: median {statistics.median(values):5.2f} s, "
            f"max {max(values):5.2f} s  ({len(values)} trials)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--down-s", type=float, default=10.0, help="outage length")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the watchdog's own log is not wanted

    config = SourceConfig()
    camera = MjpegCamera(fps=15)
    camera.start()
    source = open_source(camera.url, config)
    print(
        f"loopback MJPEG camera at 15 fps; stall_timeout_s {config.stall_timeout_s:g}, "
        f"reconnect {config.reconnect_min_s:g}..{config.reconnect_max_s:g} s, "
        f"outage {args.down_s:g} s"
    )
    try:
        unplugged = [
            trial(source, camera.stop, camera.start, args.down_s)
            for _ in range(args.trials)
        ]
        hung = [
            trial(source, camera.silence, camera.resume, args.down_s)
            for _ in range(args.trials)
        ]
    finally:
        source.close()
        camera.stop()
    report("unplugged", unplugged)
    report("hung", hung)


if __name__ == "__main__":
    main()
