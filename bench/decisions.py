"""Print how tracking and voting turn camera-like clips into per-person events.

The clip is made from the val scenes whose faces are all large and found by the
detector in the still photo: each scene is shown for a second or two, drifting
and zooming, with black, empty or covered-lens frames between scenes. Printed:
events per person (goal exactly 1.00), the share of correct first decisions,
and the median time from a person's first frame to their event.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from convert.sequences import (  # noqa: E402
    GAP_KINDS,
    Clip,
    ClipWriter,
    clear_scenes,
    found_by,
)
from edge_agent.agent import Agent  # noqa: E402
from edge_agent.config import AgentConfig, load_config  # noqa: E402
from edge_agent.face_detector import YuNetDetector  # noqa: E402

SHARED = Path(os.environ.get("MASK_EDGE_SHARED", ROOT.parent / "shared")).resolve()
DATASET = SHARED / "data" / "larxel-face-mask"
YUNET = (
    SHARED / "models" / "face-detectors" / "yunet" / "face_detection_yunet_2023mar.onnx"
)
MODEL_DIR = ROOT / "models" / "mask-classifier"

CAMERA_FPS = 15.0  # the rate the clip pretends to be filmed at
FRAMES_PER_SCENE = 30
GAP_FRAMES = 8
CLEAR_FACE_PX = 48


def build_clip(path: Path) -> Clip:
    detector = YuNetDetector(YUNET)
    scenes = [
        scene
        for scene in clear_scenes(DATASET, "val", CLEAR_FACE_PX)
        if found_by(detector, scene)
    ]
    writer = ClipWriter(path, CAMERA_FPS)
    rng = np.random.default_rng(3)
    for number, scene in enumerate(scenes):
        writer.scene(scene, FRAMES_PER_SCENE, rng)
        writer.gap(GAP_KINDS[number % len(GAP_KINDS)], GAP_FRAMES)
    return writer.close()


def start_broker(work: Path) -> tuple[subprocess.Popen[bytes] | None, int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    if shutil.which("mosquitto") is None:
        print("no mosquitto here: events are counted, the broker is skipped")
        return None, port
    conf = work / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        + ("user root\n" if os.geteuid() == 0 else "")
    )
    broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    return broker, port


def agent_config(work: Path, port: int, model_dir: Path) -> AgentConfig:
    settings: dict[str, Any] = {
        "log_level": "WARNING",
        "detector": {"model": str(YUNET)},
        "classifier": {"model_dir": str(model_dir)},
        "mqtt": {"port": port},
    }
    defaults = AgentConfig()
    if hasattr(defaults, "state_dir"):
        settings["state_dir"] = str(work / "state")
    if hasattr(defaults, "display"):
        settings["display"] = {"sink": "none"}
    path = work / "agent.yaml"
    path.write_text(yaml.safe_dump(settings))
    return load_config(path)


def run_agent(config: AgentConfig, clip: Clip) -> tuple[list[dict[str, Any]], float]:
    agent = Agent(config, str(clip.path))
    events: list[dict[str, Any]] = []
    agent.on_decision.append(events.append)
    start = time.monotonic()
    agent.run()
    return events, agent.stats.frames / (time.monotonic() - start)


def report(clip: Clip, events: list[dict[str, Any]], replay_fps: float) -> None:
    per_person, strays = clip.match(events)
    people = len(clip.persons)
    decided = {n: found for n, found in per_person.items() if found}
    right = sum(
        found[0]["verdict"] == clip.persons[n].label for n, found in decided.items()
    )
    frames_to_event = [
        found[0]["frame"]["index"] - clip.persons[n].first_frame + 1
        for n, found in decided.items()
    ]
    agent_seconds = [found[0]["decision_s"] for found in decided.values()]
    extra = sum(len(found) - 1 for found in decided.values())
    print(
        f"clip: {clip.frames} frames at {CAMERA_FPS:g} fps, {people} people, "
        f"replayed at {replay_fps:.1f} fps"
    )
    print(
        f"events per person: {len(events) / people:.2f}  "
        f"({len(events)} events; people without one: {people - len(decided)}, "
        f"second events: {extra}, events matching nobody: {len(strays)})"
    )
    print(
        f"correct decisions: {right / max(1, len(decided)):.2f}  ({right} of "
        f"{len(decided)})"
    )
    if frames_to_event:
        frames = statistics.median(frames_to_event)
        print(
            f"median time from first frame to event: {frames:g} frames "
            f"({frames / CAMERA_FPS:.2f} s at {CAMERA_FPS:g} fps; "
            f"{statistics.median(agent_seconds):.2f} s by the agent's clock "
            f"at the replay rate)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    args = parser.parse_args()
    if not (args.model_dir / "manifest.json").is_file():
        print(f"no model at {args.model_dir}: run make model first", file=sys.stderr)
        return 66
    with tempfile.TemporaryDirectory(prefix="mask-edge-decisions-") as temp:
        work = Path(temp)
        clip = build_clip(work / "clip.avi")
        broker, port = start_broker(work)
        try:
            events, replay_fps = run_agent(
                agent_config(work, port, args.model_dir), clip
            )
        finally:
            if broker is not None:
                broker.terminate()
                broker.wait(10)
        report(clip, events, replay_fps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
