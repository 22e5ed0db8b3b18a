"""Real scenes through the agent to a real broker, checked by a real subscriber."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

from conftest import DATASET, ROOT, Broker, Subscriber

from convert import sequences
from convert.dataset import read_annotation
from edge_agent.geometry import match_boxes

CLEAR_FACE_PX = 48  # faces at least this large count as clearly visible


def clear_scenes(count: int) -> list[str]:
    """Val scenes whose every face is large enough to judge without doubt."""
    scenes = sequences.clear_scenes(DATASET, "val", CLEAR_FACE_PX, max_faces=99)
    return [scene.name for scene in scenes[:count]]


def run_agent(
    config: Path, source: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_agent",
            "run",
            "--config",
            str(config),
            "--source",
            str(source),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_events_for_real_scenes(
    tmp_path: Path, agent_config: Path, broker: Broker, subscriber: Subscriber
) -> None:
    names = clear_scenes(24)
    assert len(names) == 24
    folder = tmp_path / "scenes"
    folder.mkdir()
    for name in names:
        (folder / f"{name}.png").symlink_to(DATASET / "images" / f"{name}.png")

    result = run_agent(agent_config, folder)
    assert result.returncode == 0, result.stderr
    assert "Face detector: YuNet" in result.stderr, "YuNet must be found"
    reported = int(re.search(r"events: (\d+)", result.stdout).group(1))
    assert subscriber.wait_for("events", reported)
    time.sleep(0.3)
    events = subscriber.events()
    assert len(events) == reported > 0
    assert "events not acknowledged by the broker: 0" in result.stdout

    manifest = json.loads((ROOT / "models/mask-classifier/manifest.json").read_text())
    for event in events:
        uuid.UUID(event["id"])
        assert event["device"] == "test-kiosk"
        assert datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
        assert event["verdict"] in ("with_mask", "mask_incorrect", "without_mask")
        assert event["compliant"] is (event["verdict"] == "with_mask")
        assert 0.0 < event["confidence"] <= 1.0
        assert len(event["box"]) == 4 and all(isinstance(v, int) for v in event["box"])
        assert event["frame"]["file"] in {f"{n}.png" for n in names}
        assert event["model"] == {
            "version": manifest["version"],
            "sha256": manifest["sha256"],
        }
    assert len({e["id"] for e in events}) == len(events)

    right = judged = 0
    for name in names:
        _, faces = read_annotation(DATASET / "annotations" / f"{name}.xml")
        mine = [e for e in events if e["frame"]["file"] == f"{name}.png"]
        pairs = match_boxes(
            [tuple(e["box"]) for e in mine], [f.box for f in faces], 0.4
        )
        for face_index, event_index in pairs.items():
            judged += 1
            right += mine[event_index]["verdict"] == faces[face_index].label
    assert judged >= 0.8 * sum(
        len(read_annotation(DATASET / "annotations" / f"{n}.xml")[1]) for n in names
    )
    assert right / judged >= 0.85, f"{right} of {judged} verdicts match"


def test_status_and_heartbeat(
    tmp_path: Path, agent_config: Path, broker: Broker, subscriber: Subscriber
) -> None:
    folder = tmp_path / "scenes"
    folder.mkdir()
    name = clear_scenes(1)[0]
    (folder / f"{name}.png").symlink_to(DATASET / "images" / f"{name}.png")
    result = run_agent(agent_config, folder)
    assert result.returncode == 0, result.stderr
    assert subscriber.wait_for("heartbeat", 1)
    statuses = [p.decode() for p in subscriber.payloads("status")]
    assert statuses[0] == "online" and statuses[-1] == "stopped"
    heartbeat = json.loads(subscriber.payloads("heartbeat")[-1])
    for key in (
        "uptime_s",
        "frames",
        "fps",
        "classifier_latency_ms",
        "faces",
        "events_published",
        "model_version",
        "camera",
    ):
        assert key in heartbeat
    assert heartbeat["frames"] == 1
    model = json.loads(subscriber.payloads("model")[0])
    assert len(model["sha256"]) == 64


def test_last_will_says_offline(
    tmp_path: Path, agent_config: Path, broker: Broker, subscriber: Subscriber
) -> None:
    folder = tmp_path / "scenes"
    folder.mkdir()
    for name in clear_scenes(3):
        (folder / f"{name}.png").symlink_to(DATASET / "images" / f"{name}.png")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge_agent",
            "run",
            "--config",
            str(agent_config),
            "--source",
            str(folder),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert subscriber.wait_for("status", 1, timeout=30)
    finally:
        process.kill()
        process.wait()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if subscriber.payloads("status")[-1] == b"offline":
            break
        time.sleep(0.1)
    assert subscriber.payloads("status")[-1] == b"offline"


def test_missing_source_is_refused(tmp_path: Path, agent_config: Path) -> None:
    result = run_agent(agent_config, tmp_path / "no-such-folder")
    assert result.returncode == 66
    assert "no-such-folder" in result.stderr
    assert "Traceback" not in result.stderr
