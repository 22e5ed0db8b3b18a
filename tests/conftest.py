"""Shared fixtures: a real Mosquitto broker, the shared data, the shipped model."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MASK_EDGE_SHARED", ROOT.parent / "shared")).resolve()
DATASET = SHARED / "data" / "larxel-face-mask"
YUNET = (
    SHARED / "models" / "face-detectors" / "yunet" / "face_detection_yunet_2023mar.onnx"
)
MODEL_DIR = ROOT / "models" / "mask-classifier"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Broker:
    """A Mosquitto process on loopback that a test can stop and start again."""

    directory: Path
    port: int
    extra: str = ""
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        conf = self.directory / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true"]
        if os.geteuid() == 0:
            lines.append("user root")
        conf.write_text("\n".join(lines) + "\n" + self.extra)
        log = (self.directory / "mosquitto.log").open("ab")
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(conf)], stdout=log, stderr=log
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not start; see {self.directory}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    if shutil.which("mosquitto") is None:
        pytest.fail("mosquitto is not installed (apt-get install mosquitto)")
    running = Broker(tmp_path, free_port())
    running.start()
    yield running
    running.stop()


@dataclass
class Subscriber:
    """A real MQTT client recording every message under a topic filter.

    With ``persistent`` the broker keeps its session and queues QoS 1 messages
    while it is away: nothing is missed across a broker restart, as long as the
    broker keeps its persistence file.
    """

    port: int
    topic: str
    persistent: bool = False
    client_id: str = ""
    messages: list[tuple[str, bytes, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        ready = threading.Event()
        default_id = "durable-sub" if self.persistent else f"sub-{uuid.uuid4().hex}"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id or default_id,
            clean_session=not self.persistent,
        )
        client.reconnect_delay_set(1, 1)

        def on_connect(c: mqtt.Client, u: Any, f: Any, rc: Any, p: Any) -> None:
            c.subscribe(self.topic, qos=1)

        def on_subscribe(c: mqtt.Client, u: Any, mid: Any, rc: Any, p: Any) -> None:
            ready.set()

        def on_message(c: mqtt.Client, u: Any, m: mqtt.MQTTMessage) -> None:
            with self.lock:
                self.messages.append((m.topic, m.payload, bool(m.retain)))

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        client.connect("127.0.0.1", self.port)
        client.loop_start()
        assert ready.wait(5), "subscriber could not subscribe"
        self.client = client

    def payloads(self, leaf: str) -> list[bytes]:
        with self.lock:
            return [p for t, p, _ in self.messages if t.endswith("/" + leaf)]

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(p) for p in self.payloads("events")]

    def wait_for(self, leaf: str, count: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.payloads(leaf)) >= count:
                return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscriber(broker: Broker) -> Iterator[Subscriber]:
    sub = Subscriber(broker.port, "mask-edge/#")
    yield sub
    sub.close()


def write_config(path: Path, **sections: dict[str, Any] | str) -> Path:
    """Write an agent config YAML from keyword sections, for one test."""
    import yaml

    path.write_text(yaml.safe_dump(sections, sort_keys=False))
    return path


@pytest.fixture
def agent_config(tmp_path: Path, broker: Broker) -> Path:
    """A config for the shipped model, YuNet from ../shared and the test broker."""
    return write_config(
        tmp_path / "agent.yaml",
        device_id="test-kiosk",
        state_dir=str(tmp_path / "state"),
        detector={"kind": "yunet", "model": str(YUNET), "min_face_px": 24},
        classifier={"model_dir": str(MODEL_DIR)},
        mqtt={"host": "127.0.0.1", "port": broker.port},
        source={"folder_fps": 0},
        heartbeat={"interval_s": 1},
        display={"sink": "png", "png_dir": str(tmp_path / "screen")},
        led={"kind": "none"},
    )


def val_scene_names() -> list[str]:
    return (DATASET / "splits" / "val.txt").read_text().split()
