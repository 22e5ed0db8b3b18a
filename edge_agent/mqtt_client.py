"""The paho client as the config asks: MQTT version, credentials, TLS, last will;
and what to tell the user when the broker says no or cannot be reached."""

from __future__ import annotations

import logging
import os
import ssl
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.config import AgentConfig, MqttConfig
from edge_agent.errors import ConfigError

log = logging.getLogger(__name__)

PROTOCOLS = {"3.1.1": mqtt.MQTTv311, "5": mqtt.MQTTv5}


def build_client(
    config: AgentConfig,
    will: tuple[str, str] | None = None,
    client_id: str | None = None,
) -> mqtt.Client:
    """A client ready for ``connect_async``; bad credentials or TLS files raise.

    ``will`` is the (topic, payload) the broker publishes, retained, if the
    client vanishes; ``client_id`` defaults to the device's own.
    """
    settings = config.mqtt
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or config.client_id(),
        protocol=PROTOCOLS[settings.protocol],
    )
    if settings.username:
        client.username_pw_set(settings.username, password(settings) or None)
    if settings.tls:
        client.tls_set_context(tls_context(settings))
        client.tls_insecure_set(settings.tls_insecure)
        if settings.tls_insecure:
            log.warning("mqtt.tls_insecure is on: the broker's name is not checked")
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    client.reconnect_delay_set(settings.reconnect_min_s, settings.reconnect_max_s)
    return client


def refusal(config: AgentConfig, reason: object) -> str:
    """What to say when the broker answers the connection with a refusal."""
    settings = config.mqtt
    return (
        f"MQTT broker {settings.host}:{settings.port} refused the connection "
        f"({reason}); check mqtt.username ({settings.username or 'not set'}), "
        "mqtt.password (or password_file, password_env) and the broker's "
        "access rules"
    )


def unreachable(config: AgentConfig) -> str:
    """What to say when no connection to the broker can be made at all."""
    settings = config.mqtt
    tls = ", the certificates (mqtt.tls_ca_file...)" if settings.tls else ""
    return (
        f"MQTT broker {settings.host}:{settings.port} cannot be reached; check "
        f"mqtt.host, mqtt.port{tls} and that the broker runs"
    )


def password(settings: MqttConfig) -> str:
    """The password from the environment, a file, or the config, in that order."""
    if settings.password_env:
        value = os.environ.get(settings.password_env)
        if value is None:
            raise ConfigError(
                f"mqtt.password_env: the environment variable "
                f"{settings.password_env} is not set"
            )
        return value
    if settings.password_file:
        try:
            lines = Path(settings.password_file).read_text().splitlines()
        except OSError as exc:
            raise ConfigError(
                f"mqtt.password_file {settings.password_file} cannot be read: "
                f"{exc.strerror}"
            ) from exc
        return lines[0] if lines else ""
    return settings.password


def tls_context(settings: MqttConfig) -> ssl.SSLContext:
    """Verify the broker against the CA file (or the system's CAs)."""
    if settings.tls_key_file and not settings.tls_cert_file:
        raise ConfigError("mqtt.tls_key_file is set but mqtt.tls_cert_file is not")
    for key in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
        _readable(key, getattr(settings, key))
    try:
        context = ssl.create_default_context(cafile=settings.tls_ca_file or None)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"mqtt.tls_ca_file {settings.tls_ca_file} holds no usable PEM CA "
            f"certificate ({exc.reason or exc})"
        ) from exc
    if settings.tls_cert_file:
        try:
            context.load_cert_chain(
                settings.tls_cert_file, settings.tls_key_file or None
            )
        except ssl.SSLError as exc:
            raise ConfigError(
                f"mqtt.tls_cert_file {settings.tls_cert_file} and mqtt.tls_key_file "
                f"{settings.tls_key_file or '(none)'} are not a PEM certificate "
                f"and its key ({exc.reason or exc})"
            ) from exc
    context.check_hostname = not settings.tls_insecure
    return context


def _readable(key: str, path: str) -> None:
    if not path:
        return
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise ConfigError(f"mqtt.{key} {path} cannot be read: {exc.strerror}") from exc
