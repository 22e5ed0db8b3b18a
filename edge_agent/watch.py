"""A subscriber that shows what an agent publishes, for a technician's terminal."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.config import AgentConfig

log = logging.getLogger(__name__)

Show = Callable[[str, "dict[str, Any] | str"], None]


def watch(config: AgentConfig, show: Show, count: int | None = None) -> None:
    """Subscribe to the device's topics and pass each message to ``show``."""
    done = threading.Event()
    seen = 0
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"{config.client_id()}-watch"
    )
    if config.mqtt.username:
        client.username_pw_set(config.mqtt.username, config.mqtt.password or None)

    def on_connect(c: mqtt.Client, u: Any, f: Any, reason: Any, p: Any) -> None:
        if not reason.is_failure:
            c.subscribe(config.topic("#"), qos=1)

    def on_message(c: mqtt.Client, u: Any, message: mqtt.MQTTMessage) -> None:
        nonlocal seen
        text = message.payload.decode(errors="replace")
        try:
            payload: dict[str, Any] | str = json.loads(text)
        except ValueError:
            payload = text
        show(message.topic, payload)
        if message.topic.endswith("/events"):
            seen += 1
            if count is not None and seen >= count:
                done.set()

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect_async(config.mqtt.host, config.mqtt.port, config.mqtt.keepalive_s)
    client.loop_start()
    try:
        done.wait()
    finally:
        client.disconnect()
        client.loop_stop()
