"""The publisher against a real Mosquitto: outbox, reconnects, TLS, auth, MQTT 5,
Home Assistant discovery. No model is needed."""

from __future__ import annotations

import json
import logging
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from conftest import Broker, Subscriber, free_port
from mqtt_helpers import (
    longest_decreasing_run,
    make_certificates,
    persistent,
    wait_until,
)
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.config import AgentConfig
from edge_agent.errors import ConfigError
from edge_agent.labels import LABELS
from edge_agent.publisher import Publisher

MODEL_INFO = {
    "name": "mask-classifier",
    "version": "1.2.3",
    "sha256": "0" * 64,
    "labels": list(LABELS),
}
ENV_NAME = "KIOSK_MQTT_PASSWORD"
UNSET_NAME = "NOT_SET_ANYWHERE"
WRONG_GUESS = "guess"


def settings(tmp_path: Path, port: int, **mqtt_keys: Any) -> AgentConfig:
    config = AgentConfig()
    config.device_id = "test-kiosk"
    config.state_dir = str(tmp_path / "state")
    config.mqtt.port = port
    config.mqtt.reconnect_min_s = 1
    config.mqtt.reconnect_max_s = 1
    for key, value in mqtt_keys.items():
        setattr(config.mqtt, key, value)
    return config


@contextmanager
def running(config: AgentConfig) -> Iterator[Publisher]:
    publisher = Publisher(config, MODEL_INFO)
    publisher.start()
    try:
        yield publisher
    finally:
        publisher.stop(timeout=2)


def event(number: int) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "verdict": "with_mask", "number": number}


def test_events_leave_the_outbox_when_acknowledged(
    tmp_path: Path, broker: Broker, subscriber: Subscriber
) -> None:
    with running(settings(tmp_path, broker.port)) as publisher:
        assert publisher.connected.wait(10)
        for n in range(5):
            publisher.publish_event(event(n))
        assert publisher.flush(10)
        assert publisher.unacknowledged() == 0
    assert subscriber.wait_for("events", 5)
    assert [e["seq"] for e in subscriber.events()] == [1, 2, 3, 4, 5]
    assert [e["number"] for e in subscriber.events()] == [0, 1, 2, 3, 4]


def test_backlog_drains_in_order_beside_live_events(
    tmp_path: Path, broker: Broker
) -> None:
    broker.stop()
    broker.extra = persistent(tmp_path)
    broker.start()
    listener = Subscriber(broker.port, "mask-edge/+/events", persistent=True)
    broker.stop()
    config = settings(tmp_path, broker.port)
    config.outbox.drain_rate = 5
    config.outbox.drain_window = 2
    try:
        with running(config) as publisher:
            for n in range(20):
                publisher.publish_event(event(n))
            assert publisher.unacknowledged() == 20
            assert publisher.outbox_state()["backlog"] == 20
            broker.start()
            assert publisher.connected.wait(15)
            publisher.publish_event(event(100))
            assert wait_until(lambda: len(listener.events()) >= 21)
            assert publisher.flush(10)
        seqs = [e["seq"] for e in listener.events()]
        assert sorted(set(seqs)) == list(range(1, 22))
        backlog = [s for s in seqs if s <= 20]
        assert backlog == sorted(backlog), "the backlog drains in order"
        assert seqs.index(21) < seqs.index(20), "the live event did not wait"
        assert longest_decreasing_run(seqs) <= 2
    finally:
        listener.close()


def test_status_model_and_discovery_are_retained_after_every_reconnect(
    tmp_path: Path, broker: Broker
) -> None:
    config = settings(tmp_path, broker.port)
    with running(config) as publisher:
        assert publisher.connected.wait(10)
        broker.stop()  # no persistence: the broker forgets every retained message
        broker.start()
        assert wait_until(lambda: publisher.connections == 2)
        late = Subscriber(broker.port, "#")
        try:
            assert late.wait_for("config", 1)
            assert late.wait_for("status", 1) and late.wait_for("model", 1)
            retained = {t: (p, r) for t, p, r in late.messages}
        finally:
            late.close()
    assert retained["mask-edge/test-kiosk/status"] == (b"online", True)
    assert json.loads(retained["mask-edge/test-kiosk/model"][0]) == MODEL_INFO
    assert retained["homeassistant/device/mask_edge_test-kiosk/config"][1] is True


def test_home_assistant_discovery_and_birth_message(
    tmp_path: Path, broker: Broker
) -> None:
    config = settings(tmp_path, broker.port)
    config.homeassistant.discovery_prefix = "ha-test"
    ha = Subscriber(broker.port, "ha-test/device/#")
    try:
        with running(config) as publisher:
            assert publisher.connected.wait(10)
            assert ha.wait_for("config", 1)
            birth = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fake-ha")
            birth.connect("127.0.0.1", broker.port)
            birth.loop_start()
            birth.publish("ha-test/status", "online", qos=1).wait_for_publish(5)
            birth.disconnect()
            birth.loop_stop()
            assert ha.wait_for("config", 2), "discovery not sent again on HA's birth"
        topic, payload, _ = ha.messages[0]
    finally:
        ha.close()
    # Sent retained; a subscriber already listening sees the retain flag cleared.
    assert topic == "ha-test/device/mask_edge_test-kiosk/config"
    check_discovery(json.loads(payload))


def check_discovery(device: dict[str, Any]) -> None:
    assert device["dev"]["ids"] == ["mask_edge_test-kiosk"]
    assert "1.2.3" in device["dev"]["sw"]
    assert device["o"]["name"] == "mask-edge"
    assert device["availability_topic"] == "mask-edge/test-kiosk/status"
    components = device["cmps"]
    platforms = {key: c["platform"] for key, c in components.items()}
    assert platforms["compliance"] == "event"
    assert platforms["last_verdict"] == "sensor"
    for key in ("compliance_rate", "fps", "camera"):
        assert platforms[key] == "sensor"
    for label in LABELS:
        assert platforms[f"count_{label}"] == "sensor"
        # One count per person (decisions), not per classified frame (verdicts).
        template = components[f"count_{label}"]["value_template"]
        assert f"value_json.decisions.{label}" in template
    unique = [c["unique_id"] for c in components.values()]
    assert len(set(unique)) == len(unique)
    assert components["compliance"]["event_types"] == list(LABELS)
    assert components["compliance"]["state_topic"] == "mask-edge/test-kiosk/events"
    assert components["last_verdict"]["options"] == list(LABELS)
    assert components["fps"]["state_topic"] == "mask-edge/test-kiosk/heartbeat"


def test_tls_with_a_ca_and_a_client_certificate(
    tmp_path: Path, broker: Broker, subscriber: Subscriber
) -> None:
    files = make_certificates(tmp_path / "tls")
    tls_port = free_port()
    broker.stop()
    broker.extra = (
        f"listener {tls_port} 127.0.0.1\ncafile {files['ca.crt']}\n"
        f"certfile {files['server.crt']}\nkeyfile {files['server.key']}\n"
        "require_certificate true\n"
    )
    broker.start()
    assert wait_until(lambda: subscriber.client.is_connected())
    config = settings(
        tmp_path,
        tls_port,
        tls=True,
        tls_ca_file=str(files["ca.crt"]),
        tls_cert_file=str(files["client.crt"]),
        tls_key_file=str(files["client.key"]),
    )
    with running(config) as publisher:
        assert publisher.connected.wait(15)
        publisher.publish_event(event(1))
        assert publisher.flush(10)
    assert subscriber.wait_for("events", 1)


def test_bad_tls_files_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "missing-ca.pem"
    with pytest.raises(ConfigError, match=f"mqtt.tls_ca_file {missing} cannot be"):
        Publisher(settings(tmp_path, 1883, tls=True, tls_ca_file=str(missing)), {})
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=f"{garbage} holds no usable PEM"):
        Publisher(settings(tmp_path, 1883, tls=True, tls_ca_file=str(garbage)), {})
    files = make_certificates(tmp_path / "tls")
    mixed = settings(
        tmp_path,
        1883,
        tls=True,
        tls_cert_file=str(files["client.crt"]),
        tls_key_file=str(files["server.key"]),
    )
    with pytest.raises(ConfigError, match=r"client\.crt and mqtt\.tls_key_file"):
        Publisher(mixed, {})


def test_password_from_file_and_environment(
    tmp_path: Path,
    broker: Broker,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    passwords = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(passwords), "kiosk", "s3cret"], check=True
    )
    broker.stop()
    broker.extra = f"password_file {passwords}\n"
    broker.start()
    secret = tmp_path / "mqtt-password"
    secret.write_text("s3cret\n")
    by_file = settings(
        tmp_path, broker.port, username="kiosk", password_file=str(secret)
    )
    with running(by_file) as publisher:
        assert publisher.connected.wait(10)
    monkeypatch.setenv(ENV_NAME, "s3cret")
    by_env = settings(tmp_path, broker.port, username="kiosk", password_env=ENV_NAME)
    with running(by_env) as publisher:
        assert publisher.connected.wait(10)
    wrong = settings(tmp_path, broker.port, username="kiosk", password=WRONG_GUESS)
    with (
        caplog.at_level(logging.WARNING, logger="edge_agent.publisher"),
        running(wrong) as publisher,
    ):
        assert wait_until(lambda: "refused the connection" in caplog.text, 10)
        assert not publisher.connected.is_set()
    assert "check mqtt.username (kiosk), mqtt.password" in caplog.text
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE is not set"):
        Publisher(settings(tmp_path, 1, username="k", password_env=UNSET_NAME), {})


def test_mqtt_5(tmp_path: Path, broker: Broker, subscriber: Subscriber) -> None:
    with running(settings(tmp_path, broker.port, protocol="5")) as publisher:
        assert publisher.connected.wait(10)
        assert publisher._client.protocol == mqtt.MQTTv5
        publisher.publish_event(event(7))
        assert publisher.flush(10)
    assert subscriber.wait_for("events", 1)
    assert subscriber.events()[0]["number"] == 7
    assert [p.decode() for p in subscriber.payloads("status")][-1] == "stopped"
