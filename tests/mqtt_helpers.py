"""Test helpers for the outbox and fault tests: a subscriber that survives a
broker restart, certificates from the openssl CLI, and order checks."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from bisect import bisect_left
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

# Mosquitto keeps sessions and queued messages across a restart with these.
PERSISTENT_BROKER = (
    "persistence true\npersistence_location {dir}/\nmax_queued_messages 100000\n"
)


def persistent(directory: Path) -> str:
    return PERSISTENT_BROKER.format(dir=directory)


class DurableSubscriber:
    """A QoS 1 subscriber with a persistent session: it misses nothing while the
    broker is down, as long as the broker keeps its persistence file."""

    def __init__(self, port: int, topic: str, client_id: str = "durable-sub") -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        ready = threading.Event()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False
        )
        client.reconnect_delay_set(1, 1)

        def on_connect(c: mqtt.Client, u: Any, f: Any, rc: Any, p: Any) -> None:
            c.subscribe(topic, qos=1)

        def on_subscribe(c: mqtt.Client, u: Any, mid: Any, rc: Any, p: Any) -> None:
            ready.set()

        def on_message(c: mqtt.Client, u: Any, m: mqtt.MQTTMessage) -> None:
            with self.lock:
                self.messages.append((m.topic, m.payload, bool(m.retain)))

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        client.connect("127.0.0.1", port)
        client.loop_start()
        assert ready.wait(5), "durable subscriber could not subscribe"
        self.client = client

    def payloads(self, leaf: str) -> list[bytes]:
        with self.lock:
            return [p for t, p, _ in self.messages if t.endswith("/" + leaf)]

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(p) for p in self.payloads("events")]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_until(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def longest_decreasing_run(values: list[int]) -> int:
    """Length of the longest strictly decreasing subsequence.

    At most 2 means the values are a merge of two increasing sequences: the
    backlog draining in order beside the live events, each in order.
    """
    tails: list[int] = []
    for value in (-v for v in values):
        at = bisect_left(tails, value)
        if at == len(tails):
            tails.append(value)
        else:
            tails[at] = value
    return len(tails)


def make_certificates(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    folder.mkdir(parents=True, exist_ok=True)
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        *curve,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=mask-edge test CA",
    )
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, subject in (("server", "/CN=127.0.0.1"), ("client", "/CN=kiosk")):
        run(
            "req",
            *curve,
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            subject,
        )
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        )
    return {
        name: folder / name
        for name in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")
    }
