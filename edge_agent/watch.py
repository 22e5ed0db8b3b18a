"""A subscriber that shows what an agent publishes, for a technician's terminal.

It connects as the agent does (``mqtt_client.build_client``: MQTT version,
password from the config, a file or the environment, TLS), under its own client
id and without a last will, so it never disturbs the agent. If the broker
refuses the connection, or gives no answer within ``CONNECT_TIMEOUT_S``, it
ends with a ``BrokerError`` naming the broker and the settings to check: a
technician at a terminal is better served by a message than by a silent wait.
Once connected, a lost connection is retried in the background with a warning.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from edge_agent.config import AgentConfig
from edge_agent.errors import BrokerError
from edge_agent.mqtt_client import build_client, refusal, unreachable

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0

Show = Callable[[str, "dict[str, Any] | str"], None]


def watch(
    config: AgentConfig,
    show: Show,
    count: int | None = None,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
) -> None:
    """Pass each message on the device's topics to ``show``, until ``count`` events.

    Raises ``BrokerError`` if the broker refuses or cannot be reached in time.
    """
    _Watch(config, show, count).run(connect_timeout_s)


class _Watch:
    """One watching session: its client, and what the broker has said so far."""

    def __init__(self, config: AgentConfig, show: Show, count: int | None) -> None:
        self._config = config
        self._show = show
        self._count = count
        self._seen = 0
        self._answered = threading.Event()  # connected, or refused
        self._done = threading.Event()
        self._refused: str | None = None
        # Each watcher its own id: two with one id would keep kicking each other off.
        watcher_id = f"{config.client_id()}-watch-{os.getpid()}"
        self._client = build_client(config, client_id=watcher_id)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    def run(self, connect_timeout_s: float) -> None:
        settings = self._config.mqtt
        self._client.connect_async(settings.host, settings.port, settings.keepalive_s)
        self._client.loop_start()
        try:
            if not self._answered.wait(connect_timeout_s):
                raise BrokerError(
                    f"{unreachable(self._config)} (no answer within "
                    f"{connect_timeout_s:g} s)"
                )
            self._done.wait()
        finally:
            self._client.disconnect()
            self._client.loop_stop()
        if self._refused is not None:
            raise BrokerError(self._refused)

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            self._refused = refusal(self._config, reason)
            self._answered.set()
            self._done.set()
            return
        topic = self._config.topic("#")
        log.info(
            "Watching %s on MQTT broker %s:%d",
            topic,
            self._config.mqtt.host,
            self._config.mqtt.port,
        )
        client.subscribe(topic, qos=1)
        self._answered.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure and not self._done.is_set():
            log.warning(
                "Connection to MQTT broker %s:%d lost (%s); reconnecting",
                self._config.mqtt.host,
                self._config.mqtt.port,
                reason,
            )

    def _on_message(
        self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage
    ) -> None:
        text = message.payload.decode(errors="replace")
        try:
            payload: dict[str, Any] | str = json.loads(text)
        except ValueError:
            payload = text
        self._show(message.topic, payload)
        if message.topic.endswith("/events"):
            self._seen += 1
            if self._count is not None and self._seen >= self._count:
                self._done.set()
