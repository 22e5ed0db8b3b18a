"""Faults a kiosk meets over months: the broker going away, the agent killed,
the disk filling up. Real broker, real agent processes, real scenes.

"Produced" is every event the agent logged as stored in its outbox (the DEBUG
line written right after the commit); "delivered" is every event id a durable
subscriber received. Tests compare the two, never a fixed number of events.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from conftest import DATASET, ROOT, Broker, Subscriber, val_scene_names
from mqtt_helpers import (
    fill,
    longest_decreasing_run,
    persistent,
    small_tmpfs,
    wait_until,
)

from convert.dataset import read_annotation

STORED = re.compile(r"Event (\S+) stored in the outbox as (\d+)")


def scene_folder(tmp_path: Path, count: int, name: str = "scenes") -> Path:
    """A folder of val scenes that each show at least one clear face."""
    folder = tmp_path / name
    folder.mkdir()
    chosen = 0
    for scene in val_scene_names():
        _, faces = read_annotation(DATASET / "annotations" / f"{scene}.xml")
        if faces and max(min(f.box[2:]) for f in faces) >= 48:
            image = DATASET / "images" / f"{scene}.png"
            (folder / f"{scene}.png").symlink_to(image)
            chosen += 1
            if chosen == count:
                break
    return folder


def tuned(config: Path, **sections: dict[str, Any] | str) -> Path:
    """The test config with some keys changed, for a faster fault cycle."""
    text: dict[str, Any] = yaml.safe_load(config.read_text())
    text.setdefault("mqtt", {}).update(reconnect_min_s=1, reconnect_max_s=1)
    text.setdefault("outbox", {}).update(drain_rate=100, drain_window=20)
    # Delivery is under test, not judgement: every clear face gives an event.
    text.setdefault("decision", {}).update(min_confidence=0.0)
    for key, value in sections.items():
        if isinstance(value, dict):
            text.setdefault(key, {}).update(value)
        else:
            text[key] = value
    config.write_text(yaml.safe_dump(text, sort_keys=False))
    return config


@contextmanager
def agent(config: Path, source: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``edge_agent --debug run`` as its own process, its log in ``log``."""
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edge_agent",
                "--debug",
                "run",
                "--config",
                str(config),
                "--source",
                str(source),
            ],
            cwd=ROOT,
            stdout=sink,
            stderr=sink,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def produced(log: Path) -> list[str]:
    return [m.group(1) for m in STORED.finditer(log.read_text(errors="replace"))]


def delivered(listener: Subscriber) -> list[dict[str, Any]]:
    return listener.events()


def first_arrivals(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    kept = []
    for event in events:
        if event["id"] not in seen:
            seen.add(event["id"])
            kept.append(event)
    return kept


def durable_broker(tmp_path: Path, broker: Broker) -> Subscriber:
    broker.stop()
    broker.extra = persistent(tmp_path)
    broker.start()
    return Subscriber(broker.port, "mask-edge/+/events", persistent=True)


def test_broker_outage_mid_stream_loses_nothing(
    tmp_path: Path, agent_config: Path, broker: Broker
) -> None:
    listener = durable_broker(tmp_path, broker)
    config = tuned(agent_config, source={"folder_fps": 4})
    log = tmp_path / "agent.log"
    try:
        with agent(config, scene_folder(tmp_path, 36), log) as process:
            assert wait_until(lambda: len(delivered(listener)) >= 2, 120), (
                log.read_text()
            )
            broker.stop()
            during = len(produced(log))
            assert wait_until(lambda: len(produced(log)) >= during + 4, 60)
            broker.start()
            assert process.wait(120) == 0, log.read_text()[-3000:]
        made = produced(log)
        assert wait_until(lambda: {e["id"] for e in delivered(listener)} >= set(made))
        events = delivered(listener)
    finally:
        listener.close()
    kept = first_arrivals(events)
    assert sorted(e["id"] for e in kept) == sorted(made), "none lost, none invented"
    seqs = [e["seq"] for e in kept]
    assert sorted(seqs) == list(range(1, len(made) + 1))
    assert longest_decreasing_run(seqs) <= 2, "backlog and live events each in order"
    print(
        f"produced {len(made)}, delivered {len(events)} "
        f"({len(events) - len(kept)} duplicates removed by id)"
    )


def test_sigkill_mid_stream_loses_nothing(
    tmp_path: Path, agent_config: Path, broker: Broker
) -> None:
    listener = durable_broker(tmp_path, broker)
    config = tuned(agent_config, source={"folder_fps": 4})
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    try:
        with agent(config, scene_folder(tmp_path, 36), first_log) as process:
            assert wait_until(lambda: len(delivered(listener)) >= 2, 120)
            # The broker goes first, so the outbox holds unsent events at the kill.
            broker.stop()
            during = len(produced(first_log))
            assert wait_until(lambda: len(produced(first_log)) >= during + 4, 60)
            process.send_signal(signal.SIGKILL)
            assert process.wait(10) == -signal.SIGKILL
        broker.start()
        with agent(config, scene_folder(tmp_path, 2, "again"), second_log) as process:
            assert process.wait(120) == 0, second_log.read_text()[-3000:]
        made = produced(first_log) + produced(second_log)
        assert wait_until(lambda: {e["id"] for e in delivered(listener)} >= set(made))
        events = delivered(listener)
    finally:
        listener.close()
    left = re.search(r"holds (\d+) events from an earlier run", second_log.read_text())
    assert left and int(left.group(1)) >= 4, "the kill left a backlog behind"
    kept = first_arrivals(events)
    assert sorted(e["id"] for e in kept) == sorted(made)
    print(
        f"produced {len(made)} ({left.group(1)} waiting at the kill), delivered "
        f"{len(events)} ({len(events) - len(kept)} duplicates removed by id)"
    )


def test_full_disk_drops_oldest_and_keeps_running(
    tmp_path: Path, agent_config: Path, broker: Broker
) -> None:
    with small_tmpfs(tmp_path / "small", "1m") as state:
        broker.stop()  # events pile up in the outbox while the broker is away
        config = tuned(
            agent_config,
            state_dir=str(state),
            source={"folder_fps": 10, "loop": True},
        )
        log = tmp_path / "agent.log"
        with agent(config, scene_folder(tmp_path, 12), log) as process:
            assert wait_until(lambda: len(produced(log)) >= 3, 120)
            fill(state)
            assert wait_until(lambda: "the disk is full" in log.read_text(), 120)
            broker.start()
            watcher = Subscriber(broker.port, "mask-edge/+/heartbeat")
            try:
                assert wait_until(lambda: dropped(watcher) > 0, 60), log.read_text()
                lost = dropped(watcher)
            finally:
                watcher.close()
            assert process.poll() is None, "the agent stopped on a full disk"
            process.send_signal(signal.SIGTERM)
            assert process.wait(60) == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()
    print(
        f"produced {len(produced(log))} on a full disk; the heartbeat reported "
        f"{lost} dropped; the agent kept running and exited 0"
    )


def dropped(watcher: Subscriber) -> int:
    beats = [json.loads(p) for p in watcher.payloads("heartbeat")]
    return max((b.get("outbox", {}).get("dropped", 0) for b in beats), default=0)
