"""MQTT publishing: availability, compliance events and heartbeats."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.config import AgentConfig

log = logging.getLogger(__name__)

ONLINE, OFFLINE, STOPPED = "online", "offline", "stopped"


class Publisher:
    """One MQTT connection, kept up in the background; never blocks the frame loop."""

    def __init__(self, config: AgentConfig, model_info: dict[str, Any]) -> None:
        self._config = config
        self._model_info = model_info
        self.connected = threading.Event()
        self._pending: list[mqtt.MQTTMessageInfo] = []
        self._lock = threading.Lock()
        self.events_published = 0
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=config.client_id(),
            protocol=mqtt.MQTTv311,
        )
        if config.mqtt.username:
            client.username_pw_set(config.mqtt.username, config.mqtt.password or None)
        client.will_set(config.topic("status"), OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=60)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self._client = client

    def start(self) -> None:
        """Connect in the background; paho retries until the broker answers."""
        mqtt_config = self._config.mqtt
        log.info(
            "Connecting to MQTT broker %s:%d as %s",
            mqtt_config.host,
            mqtt_config.port,
            self._config.client_id(),
        )
        self._client.connect_async(
            mqtt_config.host, mqtt_config.port, mqtt_config.keepalive_s
        )
        self._client.loop_start()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: Any,
        reason: Any,
        properties: Any,
    ) -> None:
        if reason.is_failure:
            log.warning("MQTT broker refused the connection: %s", reason)
            return
        self.connected.set()
        log.info(
            "Connected to MQTT broker %s:%d",
            self._config.mqtt.host,
            self._config.mqtt.port,
        )
        client.publish(self._config.topic("status"), ONLINE, qos=1, retain=True)
        client.publish(
            self._config.topic("model"),
            json.dumps(self._model_info),
            qos=1,
            retain=True,
        )

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: Any,
        reason: Any,
        properties: Any,
    ) -> None:
        self.connected.clear()
        if reason.is_failure:
            log.warning("MQTT connection lost (%s); reconnecting", reason)

    def publish_event(self, event: dict[str, Any]) -> None:
        info = self._client.publish(
            self._config.topic("events"), json.dumps(event), qos=1
        )
        with self._lock:
            self._pending.append(info)
        self.events_published += 1

    def publish_heartbeat(self, heartbeat: dict[str, Any]) -> None:
        self._client.publish(
            self._config.topic("heartbeat"), json.dumps(heartbeat), qos=0
        )

    def publish_retained(self, leaf: str, payload: dict[str, Any] | str) -> None:
        """Publish a device state (``camera``, ``model``...) that late joiners see."""
        text = payload if isinstance(payload, str) else json.dumps(payload)
        self._client.publish(self._config.topic(leaf), text, qos=1, retain=True)

    def unacknowledged(self) -> int:
        """Events handed to paho that the broker has not acknowledged yet."""
        with self._lock:
            self._pending = [info for info in self._pending if not info.is_published()]
            return len(self._pending)

    def flush(self, timeout: float) -> bool:
        """Wait until the broker acknowledged every event, or the timeout passes."""
        deadline = time.monotonic() + timeout
        while self.unacknowledged():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Flush, mark the device ``stopped`` and disconnect cleanly."""
        if not self.flush(timeout):
            log.error(
                "%d events were not acknowledged by the broker before exit",
                self.unacknowledged(),
            )
        if self.connected.is_set():
            info = self._client.publish(
                self._config.topic("status"), STOPPED, qos=1, retain=True
            )
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                log.warning("Status 'stopped' could not be published")
        self._client.disconnect()
        self._client.loop_stop()
