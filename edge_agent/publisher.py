"""MQTT publishing: availability, compliance events, heartbeats and discovery.

Every event goes to the outbox first; a sender thread hands it to paho and the
broker's PUBACK removes it. New events go out at once; events stored while the
broker was away (or left by an earlier run) drain in ``seq`` order beside them,
at most ``outbox.drain_rate`` a second and ``outbox.drain_window`` unacknowledged
at a time, so a long backlog never holds up what happens now. paho connects and
reconnects on its own thread; the frame loop never waits on the network. What
``publish_event`` costs it is the outbox's commit (see ``outbox``): one fsync
with ``synchronous=FULL``, rare since a person gives one event, not one a frame.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from edge_agent import discovery
from edge_agent.config import AgentConfig
from edge_agent.mqtt_client import build_client, refusal, unreachable
from edge_agent.outbox import LogThrottle, Outbox, Pending, open_outbox

log = logging.getLogger(__name__)

ONLINE, OFFLINE, STOPPED = "online", "offline", "stopped"
BUSY_TICK_S = 0.05  # how often the sender looks again while a backlog drains
IDLE_TICK_S = 1.0


class Publisher:
    """One MQTT connection, kept up in the background; never waits on the net."""

    def __init__(
        self,
        config: AgentConfig,
        model_info: dict[str, Any],
        outbox: Outbox | None = None,
    ) -> None:
        self._config = config
        self._model_info = model_info
        # The client first: bad credentials or TLS files stop the start here.
        self._client = build_client(config, will=(config.topic("status"), OFFLINE))
        self.outbox = outbox or open_outbox(
            Path(config.state_dir),
            config.outbox.max_events,
            config.outbox.max_mb,
            config.outbox.synchronous,
        )
        self.connected = threading.Event()
        self.connections = 0
        self.events_published = 0
        self.events_unsaved = 0
        self._events_topic = config.topic("events")
        self._live: deque[Pending] = deque()
        self._acks: deque[tuple[int, Any]] = deque()
        self._sender = _Sender(
            self._client,
            self.outbox,
            self._events_topic,
            self.connected,
            self._live,
            self._acks,
            config.outbox.drain_rate,
            config.outbox.drain_window,
        )
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.message_callback_add(
            discovery.birth_topic(config), self._on_home_assistant_status
        )
        self._failures = 0
        self._lost_log = LogThrottle()

    def start(self) -> None:
        """Connect in the background; paho retries until the broker answers."""
        mqtt_config = self._config.mqtt
        log.info(
            "Connecting to MQTT broker %s:%d as %s (MQTT %s%s)",
            mqtt_config.host,
            mqtt_config.port,
            self._config.client_id(),
            mqtt_config.protocol,
            ", TLS" if mqtt_config.tls else "",
        )
        self._client.connect_async(
            mqtt_config.host, mqtt_config.port, mqtt_config.keepalive_s
        )
        self._client.loop_start()
        self._sender.start()

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            log.warning("%s; retrying in the background", refusal(self._config, reason))
            return
        self.connections += 1
        self._failures = 0
        log.info(
            "Connected to MQTT broker %s:%d; %d events wait in the outbox",
            self._config.mqtt.host,
            self._config.mqtt.port,
            self.outbox.backlog(),
        )
        client.publish(self._config.topic("status"), ONLINE, qos=1, retain=True)
        client.publish(
            self._config.topic("model"),
            json.dumps(self._model_info),
            qos=1,
            retain=True,
        )
        if self._config.homeassistant.discovery:
            client.subscribe(discovery.birth_topic(self._config), qos=1)
            self._announce(client)
        self.connected.set()
        self._sender.wake()

    def _announce(self, client: mqtt.Client) -> None:
        payload = discovery.device_config(self._config, self._model_info)
        client.publish(
            discovery.config_topic(self._config),
            json.dumps(payload),
            qos=1,
            retain=True,
        )

    def _on_home_assistant_status(
        self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage
    ) -> None:
        if message.payload == ONLINE.encode():
            log.info("Home Assistant is online; announcing the kiosk again")
            self._announce(client)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self._failures += 1
        level = logging.WARNING if self._failures == 1 else logging.DEBUG
        log.log(
            level,
            "%s (attempt %d); retrying in the background",
            unreachable(self._config),
            self._failures,
        )

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self.connected.clear()
        if reason.is_failure:
            log.warning("MQTT connection lost (%s); events wait in the outbox", reason)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any
    ) -> None:
        # paho's thread holds its own locks here: only record, never wait.
        self._acks.append((mid, reason))
        self._sender.wake()

    def publish_event(self, event: dict[str, Any]) -> None:
        """Store an event in the outbox and have it sent; one SQLite commit."""
        pending = self.outbox.add(event)
        self.events_published += 1
        if pending.stored:
            log.debug(
                "Event %s stored in the outbox as %d", event.get("id"), pending.seq
            )
            if self.connected.is_set():
                self._live.append(pending)
            self._sender.wake()
            return
        if self.connected.is_set():
            # The disk refused it: better sent without a copy than not at all.
            self._client.publish(self._events_topic, pending.payload, qos=1)
            self.events_unsaved += 1
            return
        self.outbox.count_lost()
        if self._lost_log.allow():
            log.error(
                "Event %s lost: the outbox cannot store it and the broker is "
                "away; %d events dropped so far",
                event.get("id"),
                self.outbox.dropped(),
            )

    def publish_heartbeat(self, heartbeat: dict[str, Any]) -> None:
        self._client.publish(
            self._config.topic("heartbeat"), json.dumps(heartbeat), qos=0
        )

    def publish_retained(self, leaf: str, payload: dict[str, Any] | str) -> None:
        """Publish a device state (``camera``, ``model``...) that late joiners see."""
        text = payload if isinstance(payload, str) else json.dumps(payload)
        self._client.publish(self._config.topic(leaf), text, qos=1, retain=True)

    def outbox_state(self) -> dict[str, Any]:
        """Backlog, drops and the oldest waiting event's age, for the heartbeat."""
        return {**self.outbox.state(), "unsaved": self.events_unsaved}

    def unacknowledged(self) -> int:
        """Events stored that the broker has not acknowledged yet."""
        return self.outbox.backlog()

    def flush(self, timeout: float) -> bool:
        """Wait until the broker acknowledged every event, or the timeout passes."""
        deadline = time.monotonic() + timeout
        while self.outbox.backlog():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Flush, mark the device ``stopped`` and disconnect cleanly."""
        if not self.flush(timeout):
            log.warning(
                "%d events stay in the outbox %s for the next start",
                self.outbox.backlog(),
                self.outbox.path,
            )
        if self.connected.is_set():
            info = self._client.publish(
                self._config.topic("status"), STOPPED, qos=1, retain=True
            )
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                log.warning("Status 'stopped' could not be published")
        self._sender.stop()
        self._client.disconnect()
        self._client.loop_stop()
        self.outbox.close()


class _Sender:
    """The thread handing stored events to paho and settling the broker's acks."""

    def __init__(
        self,
        client: mqtt.Client,
        outbox: Outbox,
        topic: str,
        connected: threading.Event,
        live: deque[Pending],
        acks: deque[tuple[int, Any]],
        rate: float,
        window: int,
    ) -> None:
        self._client = client
        self._outbox = outbox
        self._topic = topic
        self._connected = connected
        self._live = live  # stored while connected: sent at once
        self._acks = acks  # (message id, reason) from paho's on_publish
        self._rate = rate
        self._window = window
        self._tokens = 0.0
        self._refilled = time.monotonic()
        self._cursor = 0  # the backlog is drained up to this seq
        self._mids: dict[int, int] = {}  # paho message id -> seq
        self._handed: set[int] = set()  # seqs paho holds, awaiting their ack
        self._draining: set[int] = set()  # the backlog's part of _handed
        self._unremoved: list[int] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._failure_log = LogThrottle()
        self._thread = threading.Thread(
            target=self._run, name="outbox-sender", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._settle()

    def _run(self) -> None:
        while not self._stop.is_set():
            busy = self._outbox.backlog() > len(self._handed)
            self._wake.wait(BUSY_TICK_S if busy else IDLE_TICK_S)
            self._wake.clear()
            try:
                self._settle()
                if self._connected.is_set():
                    self._send_live()
                    self._send_backlog()
            except Exception as exc:  # the sender must outlive any failure
                # Nothing is lost yet: the events stay in the outbox.
                if self._failure_log.allow():
                    log.warning("Outbox sender failed (%s); trying again", exc)
                    log.debug("Outbox sender failure", exc_info=True)

    def _settle(self) -> None:
        """Remove acknowledged events from the outbox."""
        done = self._unremoved
        while self._acks:
            mid, reason = self._acks.popleft()
            seq = self._mids.pop(mid, None)
            if seq is None:
                continue  # a status, model or discovery message
            self._handed.discard(seq)
            self._draining.discard(seq)
            if reason is not None and reason.is_failure:
                log.error("The broker refused event %d (%s); dropped", seq, reason)
                self._outbox.count_lost()
            done.append(seq)
        # On a full disk the delete can fail; the rows are retried next time.
        self._unremoved = [] if self._outbox.remove(done) else done

    def _send_live(self) -> None:
        while self._live:
            pending = self._live.popleft()
            if pending.seq not in self._handed:
                self._hand(pending)

    def _send_backlog(self) -> None:
        now = time.monotonic()
        self._tokens = min(
            max(1.0, self._rate), self._tokens + (now - self._refilled) * self._rate
        )
        self._refilled = now
        budget = min(int(self._tokens), self._window - len(self._draining))
        if budget <= 0:
            return
        for pending in self._outbox.after(self._cursor, budget + len(self._handed)):
            if pending.seq in self._handed:
                self._cursor = pending.seq
                continue
            if budget == 0:
                break
            self._cursor = pending.seq
            if self._hand(pending):
                self._draining.add(pending.seq)
                self._tokens -= 1
                budget -= 1

    def _hand(self, pending: Pending) -> bool:
        """Give one event to paho, which resends it after a reconnect until acked."""
        info = self._client.publish(self._topic, pending.payload, qos=1)
        if info.rc not in (
            MQTTErrorCode.MQTT_ERR_SUCCESS,
            MQTTErrorCode.MQTT_ERR_NO_CONN,
        ):
            log.warning("Event %d not handed to paho (%s)", pending.seq, info.rc)
            self._cursor = min(self._cursor, pending.seq - 1)
            return False
        self._mids[info.mid] = pending.seq
        self._handed.add(pending.seq)
        return True
