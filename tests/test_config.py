"""The config is strict: bad keys and values are refused with file, line and path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.config import describe, load_config
from edge_agent.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_shipped_config_is_valid() -> None:
    result = agent("check-config", "config/agent.yaml")
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_unknown_key_names_file_line_and_path(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("device_id: door\nmqtt:\n  host: 127.0.0.1\n  hots: x\n")
    result = agent("check-config", str(path))
    assert result.returncode == 78
    assert f"{path}:4: mqtt.hots: unknown key; did you mean 'host'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_wrong_type_and_range_are_both_reported(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("mqtt:\n  port: eighteen\nheartbeat:\n  interval_s: 0\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert f"{path}:2: mqtt.port: expected an integer, got 'eighteen'" in message
    assert f"{path}:4: heartbeat.interval_s: expected at least 1.0, got 0" in message


def test_bad_choice_and_section_type(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("detector:\n  kind: blazeface\nsource: camera\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "detector.kind: expected one of yunet, haar" in str(caught.value)
    assert f"{path}:3: source: expected a mapping of keys" in str(caught.value)


def test_bool_is_not_an_integer(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("mqtt:\n  port: true\n")
    with pytest.raises(ConfigError, match=r"mqtt\.port: expected an integer"):
        load_config(path)


def test_missing_file_exits_78(tmp_path: Path) -> None:
    result = agent("run", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 78
    assert "nope.yaml cannot be read" in result.stderr


def test_broken_yaml_exits_78(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("mqtt: [unclosed\n")
    result = agent("check-config", str(path))
    assert result.returncode == 78
    assert "not valid YAML" in result.stderr


def test_relative_paths_follow_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("classifier:\n  model_dir: models/current\n")
    config = load_config(path)
    assert config.classifier.model_dir == str(tmp_path / "models" / "current")


def test_every_key_is_documented_in_the_shipped_config() -> None:
    text = (ROOT / "config" / "agent.yaml").read_text()
    for key, _, _, help_text in describe():
        assert key.rsplit(".", 1)[-1] + ":" in text, key
        assert help_text


def test_readme_config_reference_is_current() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/config_reference.py"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=True,
    )
    assert result.stdout.strip() in (ROOT / "README.md").read_text()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("device_id: door+1\n", "device_id: expected a topic without the MQTT"),
        ("device_id: hall/door\n", "device_id: expected one topic level"),
        ("device_id: ''\n", "device_id: expected a topic without empty levels"),
        ("mqtt:\n  topic_prefix: site/#\n", "mqtt.topic_prefix: expected a topic"),
        ("mqtt:\n  topic_prefix: /site\n", "mqtt.topic_prefix: expected a topic"),
        ("mqtt:\n  host: ''\n", ":2: mqtt.host: expected a value"),
        (
            "heartbeat:\n  interval_s: .nan\n",
            ":2: heartbeat.interval_s: expected a finite number",
        ),
        ("device_id: a\ndevice_id: b\n", ":2: device_id: given twice"),
        (
            "decision:\n  min_frames: 8\n  window_frames: 5\n",
            "decision.window_frames must be at least decision.min_frames (5 < 8)",
        ),
        (
            "mqtt:\n  reconnect_min_s: 90\n",
            "mqtt.reconnect_min_s must not exceed mqtt.reconnect_max_s (90 > 60)",
        ),
    ],
)
def test_bad_values_are_refused_by_check_config(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    result = agent("check-config", str(path))
    assert result.returncode == 78
    assert problem in result.stderr


def test_nested_topic_prefix_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("mqtt:\n  topic_prefix: site-a/mask-edge\n")
    assert load_config(path).topic("events") == "site-a/mask-edge/kiosk-1/events"


def test_yaml_and_encoding_errors_are_one_line_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("mqtt:\n  host: [unclosed\n")
    broken = agent("check-config", str(path))
    assert broken.returncode == 78
    assert broken.stderr.startswith(f"edge-agent: {path}:")
    assert len(broken.stderr.strip().splitlines()) == 1
    path.write_bytes(b"device_id: caf\xe9\n")
    latin = agent("check-config", str(path))
    assert latin.returncode == 78
    assert "is not UTF-8 text" in latin.stderr and "Traceback" not in latin.stderr


def test_check_config_reads_the_files_the_broker_needs(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(
        f"mqtt:\n  password_file: {tmp_path / 'missing-pw'}\n"
        f"  tls: true\n  tls_ca_file: {tmp_path / 'ca.pem'}\n"
    )
    result = agent("check-config", str(path))
    assert result.returncode == 78
    assert "mqtt.password_file" in result.stderr and "missing-pw" in result.stderr
    (tmp_path / "missing-pw").write_text("secret\n")
    result = agent("check-config", str(path))
    assert result.returncode == 78
    assert "mqtt.tls_ca_file" in result.stderr and "ca.pem" in result.stderr


def test_camera_index_may_be_written_as_a_number(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("source:\n  uri: 2\n")
    assert load_config(path).source.uri == "2"
