"""The agent's configuration: typed, strict, and reported with file and line."""

from __future__ import annotations

import dataclasses
import difflib
import logging
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from edge_agent.errors import ConfigError

log = logging.getLogger(__name__)


def _opt(default: Any, help: str, **rules: Any) -> Any:
    """A config field with its default, a one-line description and its limits."""
    return field(default=default, metadata={"help": help, **rules})


@dataclass
class SourceConfig:
    uri: str = _opt(
        "0",
        "camera index or /dev/videoN, video file, image folder, "
        "or rtsp:// / http:// stream",
    )
    folder_fps: float = _opt(
        2.0, "replay rate of an image folder; 0 = as fast as possible", min=0.0
    )
    loop: bool = _opt(False, "start a file or folder again at its end")


@dataclass
class DetectorConfig:
    kind: str = _opt("yunet", "face detector", choices=("yunet", "haar"))
    model: str = _opt(
        "/usr/share/mask-edge/face_detection_yunet_2023mar.onnx",
        "YuNet .onnx file; Haar is used when it is missing",
        path=True,
    )
    score_threshold: float = _opt(0.6, "YuNet's minimum face score", min=0.0, max=1.0)
    min_face_px: int = _opt(
        24, "faces whose shorter side is smaller are not classified", min=1
    )


@dataclass
class ClassifierConfig:
    model_dir: str = _opt(
        "/var/lib/mask-edge/models/current",
        "folder holding model.tflite and manifest.json",
        path=True,
    )
    threads: int = _opt(1, "interpreter threads", min=1, max=8)


@dataclass
class MqttConfig:
    host: str = _opt("127.0.0.1", "broker host name or address")
    port: int = _opt(1883, "broker port", min=1, max=65535)
    client_id: str = _opt("", "MQTT client id; empty = mask-edge-<device_id>")
    username: str = _opt("", "user name; empty = anonymous")
    password: str = _opt("", "password for username")
    topic_prefix: str = _opt("mask-edge", "topics are <topic_prefix>/<device_id>/...")
    keepalive_s: int = _opt(30, "keep-alive interval in seconds", min=5, max=3600)


@dataclass
class HeartbeatConfig:
    interval_s: float = _opt(30.0, "seconds between heartbeats", min=1.0)


@dataclass
class AgentConfig:
    device_id: str = _opt("kiosk-1", "this device's name in topics and events")
    log_level: str = _opt(
        "INFO", "log level", choices=("DEBUG", "INFO", "WARNING", "ERROR")
    )
    source: SourceConfig = field(default_factory=SourceConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    heartbeat: HeartbeatConfig = field(default_factory=HeartbeatConfig)

    def client_id(self) -> str:
        return self.mqtt.client_id or f"mask-edge-{self.device_id}"

    def topic(self, leaf: str) -> str:
        return f"{self.mqtt.topic_prefix}/{self.device_id}/{leaf}"


def load_config(path: Path) -> AgentConfig:
    """Read and check a config file; relative paths are taken from its folder."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    errors: list[str] = []
    config = AgentConfig()
    if node is not None:
        if not isinstance(node, yaml.MappingNode):
            raise ConfigError(f"{path}:1: the config must be a mapping of keys")
        _fill(config, node, "", path, errors)
    if errors:
        raise ConfigError("\n".join(errors))
    _resolve_paths(config, path.parent.resolve())
    return config


def _fill(
    target: Any, node: yaml.MappingNode, prefix: str, path: Path, errors: list[str]
) -> None:
    fields = {f.name: f for f in dataclasses.fields(target)}
    hints = get_type_hints(type(target))
    for key_node, value_node in node.value:
        key = str(key_node.value)
        where = f"{path}:{key_node.start_mark.line + 1}: {prefix}{key}"
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            errors.append(f"{where}: unknown key{hint}")
            continue
        kind = hints[key]
        if dataclasses.is_dataclass(kind):
            if not isinstance(value_node, yaml.MappingNode):
                errors.append(f"{where}: expected a mapping of keys")
                continue
            _fill(getattr(target, key), value_node, f"{prefix}{key}.", path, errors)
            continue
        value = yaml.safe_load(yaml.serialize(value_node))
        problem = _check(value, kind, fields[key].metadata)
        if problem:
            errors.append(f"{where}: {problem}, got {value!r}")
        else:
            setattr(target, key, float(value) if kind is float else value)


def _check(value: Any, kind: Any, rules: Any) -> str | None:
    if get_origin(kind) in (Union, types.UnionType):
        kind = next(arg for arg in get_args(kind) if arg is not type(None))
    names = {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "a string",
    }
    ok = (
        isinstance(value, bool)
        if kind is bool
        else isinstance(value, int) and not isinstance(value, bool)
        if kind is int
        else isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is float
        else isinstance(value, str)
    )
    if not ok:
        return f"expected {names.get(kind, kind)}"
    if "choices" in rules and value not in rules["choices"]:
        return f"expected one of {', '.join(rules['choices'])}"
    if "min" in rules and value < rules["min"]:
        return f"expected at least {rules['min']}"
    if "max" in rules and value > rules["max"]:
        return f"expected at most {rules['max']}"
    return None


def _resolve_paths(config: Any, base: Path) -> None:
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if dataclasses.is_dataclass(value):
            _resolve_paths(value, base)
        elif item.metadata.get("path") and value and not Path(value).is_absolute():
            setattr(config, item.name, str(base / value))


def describe() -> list[tuple[str, str, str, str]]:
    """Every key as ``(path, type, default, description)``, for the reference."""
    rows: list[tuple[str, str, str, str]] = []

    def walk(cls: Any, prefix: str) -> None:
        hints = get_type_hints(cls)
        instance = cls()
        for item in dataclasses.fields(cls):
            kind = hints[item.name]
            if dataclasses.is_dataclass(kind):
                walk(kind, f"{prefix}{item.name}.")
                continue
            rows.append(
                (
                    f"{prefix}{item.name}",
                    kind.__name__,
                    repr(getattr(instance, item.name)),
                    item.metadata["help"],
                )
            )

    walk(AgentConfig, "")
    return rows
