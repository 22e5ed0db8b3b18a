"""``edge-agent watch`` against a password-protected Mosquitto: it connects as
the agent does (password file included), prints what the agent publishes, and
ends with a clear message when the broker refuses it or is not there."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from conftest import ROOT, Broker, free_port, write_config
from mqtt_helpers import wait_until

from edge_agent.config import load_config
from edge_agent.errors import BrokerError
from edge_agent.publisher import Publisher
from edge_agent.watch import watch

USER, SECRET = "kiosk", "s3cret"


@pytest.fixture
def guarded(tmp_path: Path, broker: Broker) -> Broker:
    """The test broker, now checking the kiosk's password."""
    passwords = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(passwords), USER, SECRET], check=True
    )
    broker.stop()
    broker.extra = f"password_file {passwords}\n"
    broker.start()
    return broker


def watch_config(tmp_path: Path, port: int, password: str) -> Path:
    secret = tmp_path / f"password-{uuid.uuid4().hex}"
    secret.write_text(password + "\n")
    return write_config(
        tmp_path / f"watch-{uuid.uuid4().hex}.yaml",
        device_id="test-kiosk",
        state_dir=str(tmp_path / "state"),
        mqtt={
            "host": "127.0.0.1",
            "port": port,
            "username": USER,
            "password_file": str(secret),
            "reconnect_min_s": 1,
            "reconnect_max_s": 1,
        },
    )


def edge_agent(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge_agent", *args]


def test_watch_with_the_password_file_prints_events(
    tmp_path: Path, guarded: Broker
) -> None:
    config = watch_config(tmp_path, guarded.port, SECRET)
    publisher = Publisher(load_config(config), {"version": "1.2.3", "labels": []})
    publisher.start()
    watcher = subprocess.Popen(
        edge_agent("watch", "--config", str(config), "--count", "2"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(watcher.stdout or []))
    reader.start()
    try:
        assert publisher.connected.wait(10)
        # The retained status arrives once the watcher has subscribed.
        assert wait_until(lambda: "mask-edge/test-kiosk/status online\n" in lines)
        ids = [str(uuid.uuid4()) for _ in range(2)]
        for event_id in ids:
            publisher.publish_event({"id": event_id, "verdict": "with_mask"})
        assert watcher.wait(30) == 0, watcher.stderr and watcher.stderr.read()
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
        reader.join(10)
        publisher.stop(timeout=2)
    events = [
        json.loads(line.split(" ", 1)[1])
        for line in lines
        if line.startswith("mask-edge/test-kiosk/events ")
    ]
    assert [e["id"] for e in events] == ids
    assert [e["seq"] for e in events] == [1, 2]


def test_watch_with_a_wrong_password_exits_with_a_clear_message(
    tmp_path: Path, guarded: Broker
) -> None:
    config = watch_config(tmp_path, guarded.port, "guess")
    ended = subprocess.run(
        edge_agent("watch", "--config", str(config)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ended.returncode == BrokerError.exit_code != 0
    message = ended.stderr.strip()
    assert message.startswith(f"edge-agent: MQTT broker 127.0.0.1:{guarded.port}")
    assert "refused the connection" in message
    assert "check mqtt.username (kiosk), mqtt.password" in message
    assert "Traceback" not in ended.stderr


def test_watch_without_a_broker_says_where_it_looked(tmp_path: Path) -> None:
    port = free_port()  # nothing listens here
    config = load_config(watch_config(tmp_path, port, SECRET))
    with pytest.raises(BrokerError, match=f"127.0.0.1:{port} cannot be reached"):
        watch(config, lambda topic, payload: None, connect_timeout_s=2)
