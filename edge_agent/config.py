"""The agent's configuration: typed, strict, and reported with file and line."""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
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
        number_as_text=True,
    )
    folder_fps: float = _opt(
        2.0, "replay rate of an image folder; 0 = as fast as possible", min=0.0
    )
    loop: bool = _opt(False, "start a file or folder again at its end")
    stall_timeout_s: float = _opt(
        5.0,
        "a camera, stream or looped file without a new frame for this long "
        "is reported lost and reopened",
        min=0.5,
    )
    open_timeout_s: float = _opt(
        20.0, "longest wait for a camera or stream to open before retrying", min=1.0
    )
    reconnect_min_s: float = _opt(
        1.0, "first wait before reopening a lost source; doubles per failure", min=0.1
    )
    reconnect_max_s: float = _opt(
        10.0, "longest wait between attempts to reopen a lost source", min=0.1
    )


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
class FrameQualityConfig:
    black_level: float = _opt(
        10.0, "frames darker on average (0-255 grey) are black", min=0.0, max=255.0
    )
    covered_std: float = _opt(
        6.0, "frames with less grey-level spread look at a covered lens", min=0.0
    )
    frozen_after_s: float = _opt(
        1.0, "seconds of identical frames after which the camera is frozen", min=0.0
    )


@dataclass
class TrackerConfig:
    min_iou: float = _opt(
        0.3,
        "overlap a face needs with a track's predicted box to continue it",
        min=0.01,
        max=1.0,
    )
    max_missed_frames: int = _opt(
        5, "frames a track survives without its face before it ends", min=0
    )
    max_gap_s: float = _opt(
        2.0, "seconds a track survives unseen, also when frames stop", min=0.1
    )


@dataclass
class DecisionConfig:
    min_frames: int = _opt(5, "agreeing frames a decision needs", min=1)
    agreement: float = _opt(
        0.7, "share of the known recent votes that must agree", min=0.5, max=1.0
    )
    window_frames: int = _opt(
        10, "latest votes a decision looks at; at least min_frames", min=1
    )
    min_confidence: float = _opt(
        0.6, "less confident frames vote unknown", min=0.0, max=1.0
    )
    min_sharpness: float = _opt(
        25.0, "crops with a lower variance of the Laplacian vote unknown", min=0.0
    )
    folder_as_stills: bool = _opt(
        True, "each image of a folder source is its own scene, decided alone"
    )


@dataclass
class MqttConfig:
    host: str = _opt("127.0.0.1", "broker host name or address", nonempty=True)
    port: int = _opt(1883, "broker port", min=1, max=65535)
    client_id: str = _opt("", "MQTT client id; empty = mask-edge-<device_id>")
    username: str = _opt("", "user name; empty = anonymous")
    password: str = _opt("", "password for username")
    topic_prefix: str = _opt(
        "mask-edge", "topics are <topic_prefix>/<device_id>/...", topic="path"
    )
    keepalive_s: int = _opt(30, "keep-alive interval in seconds", min=5, max=3600)
    password_file: str = _opt(
        "", "file whose first line is the password (overrides password)", path=True
    )
    password_env: str = _opt(
        "", "environment variable holding the password (overrides both above)"
    )
    protocol: str = _opt("3.1.1", "MQTT version", choices=("3.1.1", "5"))
    tls: bool = _opt(False, "connect with TLS")
    tls_ca_file: str = _opt(
        "", "PEM CA certificates for the broker; empty = system CAs", path=True
    )
    tls_cert_file: str = _opt("", "PEM client certificate; empty = none", path=True)
    tls_key_file: str = _opt("", "PEM key of the client certificate", path=True)
    tls_insecure: bool = _opt(
        False, "skip the broker host name check (the chain is still verified)"
    )
    reconnect_min_s: int = _opt(
        1, "first wait before reconnecting; doubles per failure", min=1
    )
    reconnect_max_s: int = _opt(60, "longest wait between reconnects", min=1)


@dataclass
class OutboxConfig:
    max_events: int = _opt(
        100_000, "events kept for the broker at most; oldest dropped first", min=1
    )
    max_mb: float = _opt(
        64.0, "megabytes of events kept at most; oldest dropped first", min=0.01
    )
    synchronous: str = _opt(
        "FULL",
        "FULL: each event survives power loss; NORMAL: survives a crash only",
        choices=("NORMAL", "FULL"),
    )
    drain_rate: float = _opt(
        20.0, "backlog events sent a second after a reconnect", min=0.1
    )
    drain_window: int = _opt(
        10, "backlog events awaiting the broker's ack at most", min=1
    )


@dataclass
class HomeAssistantConfig:
    discovery: bool = _opt(True, "publish Home Assistant MQTT discovery")
    discovery_prefix: str = _opt(
        "homeassistant",
        "Home Assistant's discovery prefix (its birth topic too)",
        topic="path",
    )


@dataclass
class HeartbeatConfig:
    interval_s: float = _opt(30.0, "seconds between heartbeats", min=1.0)


@dataclass
class DisplayConfig:
    sink: str = _opt(
        "framebuffer",
        "kiosk screen: framebuffer (HDMI, no desktop), png (files) or none",
        choices=("framebuffer", "png", "none"),
    )
    device: str = _opt("/dev/fb0", "framebuffer device")
    sysfs_root: str = _opt(
        "/sys/class/graphics", "folder holding fbN/virtual_size, bits_per_pixel, stride"
    )
    png_dir: str = _opt(
        "/run/mask-edge/screen", "folder for the png sink's files", path=True
    )
    png_numbered: bool = _opt(
        False, "keep every screen as screen-NNNNNN.png instead of latest.png"
    )
    width: int = _opt(1280, "png sink width in pixels", min=160, max=7680)
    height: int = _opt(720, "png sink height in pixels", min=120, max=4320)
    max_fps: float = _opt(10.0, "most screens drawn a second", min=0.5, max=60.0)
    idle_after_s: float = _opt(
        3.0, "seconds without a face before the idle screen", min=0.5
    )
    hold_s: float = _opt(4.0, "seconds a decision stays in the banner", min=0.5)
    camera_timeout_s: float = _opt(
        5.0, "seconds without a frame before 'Camera unavailable'", min=0.5
    )


@dataclass
class LedConfig:
    kind: str = _opt(
        "none",
        "status LED: none, rgb (one RGB LED) or three (green, orange, red LEDs)",
        choices=("none", "rgb", "three"),
    )
    red_pin: int = _opt(17, "BCM GPIO number of the red LED or channel", min=0, max=27)
    green_pin: int = _opt(
        27, "BCM GPIO number of the green LED or channel", min=0, max=27
    )
    blue_pin: int = _opt(
        22, "BCM GPIO number of the RGB LED's blue channel", min=0, max=27
    )
    orange_pin: int = _opt(
        23, "BCM GPIO number of the orange LED (three)", min=0, max=27
    )
    pwm: bool = _opt(True, "dim and mix colours by PWM; false: on/off only")
    active_high: bool = _opt(True, "false for LEDs wired to 3.3 V (common anode)")
    hold_s: float = _opt(3.0, "seconds a decision's colour stays lit", min=0.1)
    idle_level: float = _opt(
        0.0, "brightness while idle, 0 (off) to 1; needs pwm", min=0.0, max=1.0
    )


@dataclass
class AgentConfig:
    device_id: str = _opt(
        "kiosk-1", "this device's name in topics and events", topic="level"
    )
    log_level: str = _opt(
        "INFO", "log level", choices=("DEBUG", "INFO", "WARNING", "ERROR")
    )
    state_dir: str = _opt(
        "/var/lib/mask-edge", "folder for the outbox of unsent events", path=True
    )
    source: SourceConfig = field(default_factory=SourceConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    frame_quality: FrameQualityConfig = field(default_factory=FrameQualityConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    homeassistant: HomeAssistantConfig = field(default_factory=HomeAssistantConfig)
    heartbeat: HeartbeatConfig = field(default_factory=HeartbeatConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    led: LedConfig = field(default_factory=LedConfig)

    def client_id(self) -> str:
        return self.mqtt.client_id or f"mask-edge-{self.device_id}"

    def topic(self, leaf: str) -> str:
        return f"{self.mqtt.topic_prefix}/{self.device_id}/{leaf}"


def load_config(path: Path) -> AgentConfig:
    """Read and check a config file; relative paths are taken from its folder."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text: {exc}") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_problem(path, exc)) from exc
    errors: list[str] = []
    config = AgentConfig()
    if node is not None:
        if not isinstance(node, yaml.MappingNode):
            raise ConfigError(f"{path}:1: the config must be a mapping of keys")
        _fill(config, node, "", path, errors)
    if not errors:
        errors = [f"{path}: {problem}" for problem in _cross_check(config)]
    if errors:
        raise ConfigError("\n".join(errors))
    _resolve_paths(config, path.parent.resolve())
    return config


def _fill(
    target: Any, node: yaml.MappingNode, prefix: str, path: Path, errors: list[str]
) -> None:
    fields = {f.name: f for f in dataclasses.fields(target)}
    hints = get_type_hints(type(target))
    seen: set[str] = set()
    for key_node, value_node in node.value:
        key = str(key_node.value)
        where = f"{path}:{key_node.start_mark.line + 1}: {prefix}{key}"
        if key in seen:
            errors.append(f"{where}: given twice; keep one")
            continue
        seen.add(key)
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
        if fields[key].metadata.get("number_as_text") and type(value) is int:
            value = str(value)  # `uri: 0` means camera 0, as `uri: "0"` does
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
    if kind is float and not math.isfinite(value):
        return "expected a finite number"
    if rules.get("nonempty") and not value.strip():
        return "expected a value, not an empty string"
    if "choices" in rules and value not in rules["choices"]:
        return f"expected one of {', '.join(rules['choices'])}"
    if "min" in rules and value < rules["min"]:
        return f"expected at least {rules['min']}"
    if "max" in rules and value > rules["max"]:
        return f"expected at most {rules['max']}"
    if "topic" in rules:
        return _topic_problem(value, rules["topic"] == "level")
    return None


def _yaml_problem(path: Path, exc: yaml.YAMLError) -> str:
    """One line: the file, the line and what the YAML parser objected to."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    line = f":{mark.line + 1}" if mark is not None else ""
    return f"{path}{line}: not valid YAML: {problem}"


def _cross_check(config: AgentConfig) -> list[str]:
    """Problems no single key shows: settings that contradict each other."""
    problems = []
    if config.decision.window_frames < config.decision.min_frames:
        problems.append(
            "decision.window_frames must be at least decision.min_frames "
            f"({config.decision.window_frames} < {config.decision.min_frames})"
        )
    for section in ("source", "mqtt"):
        low = getattr(config, section).reconnect_min_s
        high = getattr(config, section).reconnect_max_s
        if low > high:
            problems.append(
                f"{section}.reconnect_min_s must not exceed "
                f"{section}.reconnect_max_s ({low} > {high})"
            )
    return problems


def _topic_problem(value: str, single_level: bool) -> str | None:
    """Why a string cannot be part of an MQTT topic name, or None."""
    levels = value.split("/")
    if single_level and len(levels) > 1:
        return "expected one topic level, without '/'"
    if any(not level for level in levels):
        return "expected a topic without empty levels (no leading, trailing or '//')"
    if any(char in value for char in "+#\0"):
        return "expected a topic without the MQTT wildcards '+' and '#'"
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
