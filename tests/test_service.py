"""The agent as a systemd service: sd_notify, the unit file and ``make install``.

PID 1 here is not systemd, so the notifications go to a unix datagram socket
the test binds, as systemd's would; the unit is checked offline by
``systemd-analyze``; the install is staged into a DESTDIR.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from conftest import MODEL_DIR, ROOT, YUNET, Broker
from loopback_camera import MjpegCamera

from edge_agent.config import load_config
from edge_agent.errors import ConfigError, ModelError
from edge_agent.service import ServiceNotifier

UNIT = ROOT / "systemd" / "edge-agent.service"


class NotifySocket:
    """A unix datagram socket standing in for systemd's; records each message."""

    def __init__(self, address: str | Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        text = str(address)
        self.sock.bind(b"\0" + text[1:].encode() if text.startswith("@") else text)
        self.sock.settimeout(0.1)
        self.address = text
        self.messages: list[str] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._closed.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue

    def lines(self) -> list[str]:
        return [line for message in list(self.messages) for line in message.split("\n")]

    def wait_for(self, line: str, count: int = 1) -> None:
        self.wait_until(lambda lines: lines.count(line) >= count, f"{count}× {line}")

    def wait_until(
        self, done: Callable[[list[str]], bool], what: str, limit_s: float = 60.0
    ) -> None:
        deadline = time.monotonic() + limit_s
        while not done(self.lines()):
            assert time.monotonic() < deadline, f"no {what}: {self.lines()}"
            time.sleep(0.05)

    def close(self) -> None:
        self._closed.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    listener = NotifySocket(tmp_path / "notify")
    yield listener
    listener.close()


# sd_notify itself


def test_notifier_does_nothing_without_systemd() -> None:
    notifier = ServiceNotifier.from_environment({})
    assert not notifier.enabled
    assert not notifier.notify("READY=1")
    assert not notifier.watchdog()


def test_notifier_speaks_the_protocol(notify_socket: NotifySocket) -> None:
    notifier = ServiceNotifier.from_environment(
        {"NOTIFY_SOCKET": notify_socket.address, "WATCHDOG_USEC": "60000000"}
    )
    assert notifier.watchdog_interval_s == 30.0
    notifier.ready("1.0 fps, 0 events, broker connected, camera ok")
    assert notifier.watchdog()
    assert not notifier.watchdog(), "the second ping is not due for 30 s"
    notifier.stopping()
    notify_socket.wait_for("STOPPING=1")
    assert notify_socket.messages == [
        "READY=1\nSTATUS=1.0 fps, 0 events, broker connected, camera ok",
        "WATCHDOG=1",
        "STOPPING=1\nSTATUS=stopping",
    ]


def test_notifier_reaches_an_abstract_socket() -> None:
    listener = NotifySocket(f"@mask-edge-test-{os.getpid()}")
    try:
        notifier = ServiceNotifier.from_environment({"NOTIFY_SOCKET": listener.address})
        assert notifier.notify("READY=1")
        listener.wait_for("READY=1")
    finally:
        listener.close()


def test_watchdog_meant_for_another_process_is_ignored() -> None:
    environ = {"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "1000000"}
    assert ServiceNotifier.from_environment(environ).watchdog_interval_s == 0.5
    environ["WATCHDOG_PID"] = str(os.getpid() + 1)
    assert ServiceNotifier.from_environment(environ).watchdog_interval_s is None


def test_a_vanished_socket_does_not_stop_the_agent(tmp_path: Path) -> None:
    notifier = ServiceNotifier(str(tmp_path / "gone"), 1_000_000)
    assert not notifier.notify("READY=1")
    assert not notifier.watchdog()


# The real agent under a stand-in systemd


def start_agent(
    config: Path, source: str, notify: NotifySocket, **settings: object
) -> subprocess.Popen[str]:
    conf = yaml.safe_load(config.read_text())
    conf["source"] = {**conf.get("source", {}), **settings}
    config.write_text(yaml.safe_dump(conf))
    environ = {
        **os.environ,
        "NOTIFY_SOCKET": notify.address,
        "WATCHDOG_USEC": "600000",  # a ping every 0.3 s
    }
    command = [sys.executable, "-m", "edge_agent", "run", "--config", str(config)]
    return subprocess.Popen(
        [*command, "--source", source],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=(config.parent / "agent.log").open("w"),
        text=True,
    )


def stop_agent(agent: subprocess.Popen[str], config: Path) -> None:
    agent.send_signal(signal.SIGTERM)
    agent.wait(timeout=60)
    assert agent.returncode == 0, (config.parent / "agent.log").read_text()


def test_agent_tells_systemd_ready_status_watchdog_stopping(
    tmp_path: Path, agent_config: Path, broker: Broker, notify_socket: NotifySocket
) -> None:
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    for i in range(3):
        cv2.imwrite(str(scenes / f"{i}.png"), np.full((120, 160, 3), 60 * i, np.uint8))
    agent = start_agent(agent_config, str(scenes), notify_socket, loop=True)
    try:
        notify_socket.wait_for("WATCHDOG=1", count=3)
    finally:
        stop_agent(agent, agent_config)
    notify_socket.wait_for("STOPPING=1")

    lines = notify_socket.lines()
    assert lines[0] == "READY=1"
    statuses = [line for line in lines if line.startswith("STATUS=")]
    assert any(re.search(r"[\d.]+ fps, \d+ events, broker \w+", s) for s in statuses)
    assert lines.index("STOPPING=1") > max(
        i for i, line in enumerate(lines) if line == "WATCHDOG=1"
    )


def test_watchdog_is_pinged_while_the_camera_is_lost(
    agent_config: Path, broker: Broker, notify_socket: NotifySocket
) -> None:
    camera = MjpegCamera()
    camera.start()
    camera.stop()  # nobody answers at this address any more
    agent = start_agent(agent_config, camera.url, notify_socket, reconnect_max_s=1)
    try:
        notify_socket.wait_for("READY=1")
        notify_socket.wait_until(
            lambda lines: any("camera lost" in line for line in lines),
            "STATUS with camera lost",
        )
        pings = notify_socket.lines().count("WATCHDOG=1")
        notify_socket.wait_for("WATCHDOG=1", count=pings + 3)
        assert agent.poll() is None
    finally:
        stop_agent(agent, agent_config)


# The unit file


def unit_settings(text: str) -> list[tuple[str, str]]:
    pairs = []
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            pairs.append((key.strip(), value.strip()))
    return pairs


def runnable_copy(unit: Path, prefix: Path, into: Path) -> Path:
    """The unit with its /opt/mask-edge paths under ``prefix``, which must exist."""
    copy = into / "edge-agent.service"
    copy.write_text(unit.read_text().replace("/opt/mask-edge", str(prefix)))
    return copy


@pytest.fixture
def fake_prefix(tmp_path: Path) -> Path:
    """A PREFIX whose bin/edge-agent exists, as systemd-analyze verify demands."""
    program = tmp_path / "prefix" / "bin" / "edge-agent"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    return program.parent.parent


def systemd_analyze(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing (apt-get install systemd)")
    return subprocess.run(
        ["systemd-analyze", *args], capture_output=True, text=True, timeout=60
    )


def test_unit_verifies_without_warnings(tmp_path: Path, fake_prefix: Path) -> None:
    result = systemd_analyze("verify", str(runnable_copy(UNIT, fake_prefix, tmp_path)))
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and result.stdout == ""


def test_unit_exposure_is_low(tmp_path: Path, fake_prefix: Path) -> None:
    unit = runnable_copy(UNIT, fake_prefix, tmp_path)
    result = systemd_analyze("security", "--offline=true", str(unit))
    found = re.search(
        r"Overall exposure level for edge-agent\.service: ([\d.]+)", result.stdout
    )
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= 3.0, result.stdout


def test_unit_restarts_what_a_restart_can_fix_and_keeps_the_devices() -> None:
    settings = unit_settings(UNIT.read_text())
    values = dict(settings)
    assert values["Type"] == "notify" and values["NotifyAccess"] == "main"
    assert values["Restart"] == "on-failure" and values["WatchdogSec"]
    hopeless = {int(code) for code in values["RestartPreventExitStatus"].split()}
    assert hopeless == {ConfigError.exit_code, ModelError.exit_code}
    pre_check = values["ExecStartPre"]
    assert pre_check.endswith("check-config /etc/mask-edge/agent.yaml")
    assert pre_check.startswith("-"), "a failed pre-check would bypass the 78 rule"
    assert values["User"] == "mask-edge" and values["StateDirectory"] == "mask-edge"
    assert "PrivateDevices" not in values, "it would hide the camera, GPIO and screen"
    assert values["DevicePolicy"] == "closed"
    allowed = {value.split()[0] for key, value in settings if key == "DeviceAllow"}
    assert {"char-video4linux", "char-gpiochip", "char-fb"} <= allowed
    assert set(values["SupplementaryGroups"].split()) >= {"video", "gpio"}


# make install, staged


def make_install(destdir: Path, *settings: str) -> subprocess.CompletedProcess[str]:
    staging = [
        f"DESTDIR={destdir}",
        f"MODEL={MODEL_DIR}",
        f"YUNET_FILE={YUNET}",
        "PIP_ARGS=--no-deps",  # the runtime wheels are big; this tests the steps
        f"CONFIG_PYTHON={sys.executable}",
    ]
    return subprocess.run(
        ["make", "--no-print-directory", "install", *staging, *settings],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_make_install_stages_a_complete_device(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    result = make_install(stage)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "skipped" in result.stdout  # no user, no systemctl into a DESTDIR

    prefix = stage / "opt" / "mask-edge"
    assert (prefix / "bin" / "edge-agent").is_file()
    yunet = prefix / "models" / YUNET.name
    assert yunet.read_bytes() == YUNET.read_bytes()
    current = stage / "var/lib/mask-edge/models/current"
    assert current.is_symlink() and (current / "manifest.json").is_file()
    assert (current / "model.tflite").read_bytes() == (
        MODEL_DIR / "model.tflite"
    ).read_bytes()

    config = load_config(stage / "etc/mask-edge/agent.yaml")
    assert config.detector.model == "/opt/mask-edge/models/" + YUNET.name
    assert config.classifier.model_dir == "/var/lib/mask-edge/models/current"
    assert config.state_dir == "/var/lib/mask-edge"

    unit = stage / "etc/systemd/system/edge-agent.service"
    result = systemd_analyze("verify", str(runnable_copy(unit, prefix, tmp_path)))
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_make_install_keeps_an_edited_config(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    config = stage / "etc/mask-edge/agent.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("device_id: door-2\n")
    result = make_install(stage)
    assert result.returncode == 0, result.stdout + result.stderr
    assert config.read_text() == "device_id: door-2\n"
    assert load_config(config.with_name("agent.yaml.new")).device_id == "kiosk-1"
    assert "agent.yaml.new" in result.stdout


def test_make_install_refuses_a_wrong_yunet(tmp_path: Path) -> None:
    impostor = tmp_path / YUNET.name
    impostor.write_bytes(b"not yunet")
    result = make_install(tmp_path / "stage", f"YUNET_FILE={impostor}")
    assert result.returncode != 0
    assert "sha256" in result.stderr
    assert not (tmp_path / "stage/opt/mask-edge/bin").exists()
