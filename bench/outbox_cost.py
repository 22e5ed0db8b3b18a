"""What the outbox costs the frame loop, and whether a backlog all arrives.

Prints the write cost of one event (median and p95, microseconds) for each
``synchronous`` level, on the file system of ``--dir`` (put it on the device's
SD card to measure there). Then, when Mosquitto is installed, stores events
while the broker is down, starts it, and prints produced vs delivered.

    .venv/bin/python bench/outbox_cost.py [--events 2000] [--dir /var/tmp]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.config import AgentConfig
from edge_agent.outbox import Outbox
from edge_agent.publisher import Publisher


def sample_event() -> dict[str, Any]:
    """An event of the agent's usual size (about 500 bytes of JSON)."""
    return {
        "id": str(uuid.uuid4()),
        "device": "kiosk-1",
        "time": "2026-12-04T17:00:00.000Z",
        "verdict": "with_mask",
        "compliant": True,
        "confidence": 0.9731,
        "scores": {"with_mask": 0.9731, "mask_incorrect": 0.02, "without_mask": 0.0069},
        "box": [120, 80, 96, 112],
        "face_px": 96,
        "frame": {"index": 1234, "file": "scene.png"},
        "model": {"version": "2026.12.04.1700", "sha256": "0" * 64},
    }


def write_cost(folder: Path, synchronous: str, count: int) -> tuple[list[float], float]:
    """Microseconds per stored event, and per acknowledged event removed."""
    outbox = Outbox(folder / f"cost-{synchronous}.sqlite3", synchronous=synchronous)
    times = []
    for _ in range(count):
        event = sample_event()
        start = time.perf_counter()
        outbox.add(event)
        times.append((time.perf_counter() - start) * 1e6)
    acked = [p.seq for p in outbox.after(0, count)]
    start = time.perf_counter()
    outbox.remove(acked)
    per_ack = (time.perf_counter() - start) * 1e6 / max(1, len(acked))
    outbox.close()
    return times, per_ack


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_broker(folder: Path, port: int) -> subprocess.Popen[bytes]:
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nuser root\n")
    broker = subprocess.Popen(
        ["mosquitto", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return broker
        except OSError:
            time.sleep(0.01)
    raise RuntimeError("mosquitto did not start")


def delivery(folder: Path, count: int, rate: float) -> None:
    """Events stored while the broker is down, then drained: all arrive?"""
    port = free_port()
    config = AgentConfig()
    config.state_dir = str(folder / "state")
    config.mqtt.port = port
    config.outbox.synchronous = "NORMAL"
    config.outbox.drain_rate = rate
    publisher = Publisher(config, {"version": "bench", "labels": []})
    publisher.start()
    produced = {publisher_event(publisher) for _ in range(count)}
    broker = start_broker(folder, port)
    arrived: list[str] = []
    lock = threading.Lock()

    def on_message(c: mqtt.Client, u: Any, message: mqtt.MQTTMessage) -> None:
        with lock:
            arrived.append(json.loads(message.payload)["id"])

    listener = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-listener")
    listener.on_message = on_message
    listener.connect("127.0.0.1", port)
    listener.subscribe(config.topic("events"), qos=1)
    listener.loop_start()
    start = time.monotonic()
    publisher.flush(timeout=count / rate + 30)
    drained = time.monotonic() - start
    time.sleep(0.5)
    publisher.stop()
    listener.disconnect()
    listener.loop_stop()
    broker.terminate()
    broker.wait()
    with lock:
        unique = set(arrived)
    print(
        f"delivery: produced {len(produced)} while the broker was down, delivered "
        f"{len(unique & produced)} ({len(arrived) - len(unique)} duplicates), "
        f"missing {len(produced - unique)}; drained in {drained:.1f} s at "
        f"drain_rate {rate:g}/s (reconnect wait included)"
    )


def publisher_event(publisher: Publisher) -> str:
    event = sample_event()
    publisher.publish_event(event)
    return str(event["id"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--dir", type=Path, default=None, help="file system to test")
    parser.add_argument("--rate", type=float, default=200.0, help="drain_rate")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as name:
        folder = Path(name)
        print(f"outbox write cost per event, {args.events} events in {folder}:")
        for level in ("NORMAL", "FULL"):
            times, per_ack = write_cost(folder, level, args.events)
            p95 = statistics.quantiles(times, n=20)[-1]
            print(
                f"  synchronous={level}: median {statistics.median(times):.0f} µs, "
                f"p95 {p95:.0f} µs; removal after the ack {per_ack:.0f} µs"
            )
        if shutil.which("mosquitto"):
            delivery(folder, min(args.events, 1000), args.rate)
        else:
            print("delivery: skipped, mosquitto is not installed")


if __name__ == "__main__":
    main()
