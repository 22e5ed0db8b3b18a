"""Camera loss: a source that stops, hangs or vanishes is reported and reopened.

Every source here is real: an MJPEG stream over HTTP on loopback that the
test stops, silences and restarts, image folders and an MJPG video that
disappear and come back. Waits are bounded, never timed.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import pytest
import yaml
from conftest import ROOT, Broker, Subscriber
from loopback_camera import MjpegCamera
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.agent import Agent
from edge_agent.camera import Frame, FrameSource, open_source
from edge_agent.config import SourceConfig, load_config
from edge_agent.errors import SourceError
from edge_agent.watchdog import (
    LOST,
    OK,
    RECONNECTING,
    STARTING,
    Backoff,
    CameraStatus,
)

AgentProcess = subprocess.Popen[str]
FAST = SourceConfig(stall_timeout_s=1.0, reconnect_min_s=0.2, reconnect_max_s=0.5)


@pytest.fixture
def camera() -> Iterator[MjpegCamera]:
    running = MjpegCamera()
    running.start()
    yield running
    running.stop()


def read_until(
    source: FrameSource,
    done: Callable[[], bool],
    frames: list[Frame] | None = None,
    limit_s: float = 30.0,
) -> list[Frame]:
    """Read as the frame loop does until ``done()``; fail after ``limit_s``."""
    frames = [] if frames is None else frames
    deadline = time.monotonic() + limit_s
    while not done():
        assert time.monotonic() < deadline, f"still {source.status}"
        frame = source.read(0.25)
        if frame is not None:
            frames.append(frame)
    return frames


def read_frames(source: FrameSource, count: int) -> list[Frame]:
    frames: list[Frame] = []
    read_until(source, lambda: len(frames) >= count, frames)
    return frames


def state_is(source: FrameSource, *states: str) -> Callable[[], bool]:
    return lambda: source.status.state in states


def readers() -> int:
    return sum(
        t.name == "camera-reader" and t.is_alive() for t in threading.enumerate()
    )


def test_stream_that_stops_is_lost_then_resumed(camera: MjpegCamera) -> None:
    source = open_source(camera.url, FAST)
    assert source.status.state == STARTING and not source.finite
    read_until(source, state_is(source, OK))

    camera.stop()
    read_until(source, state_is(source, LOST))
    assert source.status.attempts == 1
    assert source.status.retry_in_s == pytest.approx(0.2)

    camera.start()
    frames = read_until(source, state_is(source, OK)) + read_frames(source, 3)
    assert [f.image.shape for f in frames[-3:]] == [(240, 320, 3)] * 3
    indexes = [f.index for f in frames]
    assert indexes == sorted(indexes) and len(set(indexes)) == len(indexes)
    source.close()
    assert source.status.state == "stopped"


def test_hanging_read_does_not_stall_the_loop(camera: MjpegCamera) -> None:
    source = open_source(camera.url, FAST)
    read_until(source, state_is(source, OK))

    camera.silence()  # the connection stays open: OpenCV's read blocks ~30 s
    read_until(source, state_is(source, LOST))
    assert "no frame for 1 s" in source.status.reason
    assert readers() >= 1, "the hung read should still be running"

    camera.resume()
    read_until(source, state_is(source, OK))
    source.close()


def test_missing_camera_is_retried_with_capped_backoff() -> None:
    config = SourceConfig(stall_timeout_s=1.0, reconnect_min_s=0.1, reconnect_max_s=0.4)
    source = open_source("/dev/mask-edge-test-no-camera", config)
    read_until(source, lambda: source.status.attempts >= 5)
    assert source.status.state == LOST
    assert "does not exist" in source.status.reason
    assert source.status.retry_in_s == pytest.approx(0.4)
    assert source.read(0.05) is None
    source.close()


def test_stream_missing_at_start_comes_up_later() -> None:
    camera = MjpegCamera()
    camera.start()
    camera.stop()  # keeps its port, now refused
    source = open_source(camera.url, FAST)
    read_until(source, state_is(source, LOST))
    camera.start()
    try:
        read_until(source, state_is(source, OK))
    finally:
        source.close()
        camera.stop()


def write_images(folder: Path, count: int) -> None:
    folder.mkdir()
    for i in range(count):
        image = np.full((120, 160, 3), 40 * i, np.uint8)
        cv2.imwrite(str(folder / f"scene-{i}.png"), image)


def test_looped_folder_that_disappears_and_comes_back(tmp_path: Path) -> None:
    folder = tmp_path / "scenes"
    write_images(folder, 3)
    config = SourceConfig(
        loop=True,
        folder_fps=20,
        stall_timeout_s=1.0,
        reconnect_min_s=0.2,
        reconnect_max_s=0.5,
    )
    source = open_source(str(folder), config)
    frames = read_frames(source, 4)
    assert [f.name for f in frames[:4]] == [
        "scene-0.png",
        "scene-1.png",
        "scene-2.png",
        "scene-0.png",
    ]

    folder.rename(tmp_path / "away")
    read_until(source, state_is(source, LOST))
    (tmp_path / "away").rename(folder)
    after = read_until(source, state_is(source, OK)) + read_frames(source, 2)
    assert all(f.name and f.name.startswith("scene-") for f in after)
    source.close()


def test_looped_video_file_that_is_replaced(tmp_path: Path) -> None:
    video = tmp_path / "door.avi"
    writer = cv2.VideoWriter(
        str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120)
    )
    for i in range(5):
        writer.write(np.full((120, 160, 3), 50 * i, np.uint8))
    writer.release()
    config = SourceConfig(loop=True, stall_timeout_s=1.0, reconnect_min_s=0.2)
    source = open_source(str(video), config)
    frames = read_frames(source, 7)  # past the end of the file, looped
    assert frames[6].index == 6

    video.rename(tmp_path / "moved.avi")  # the loop's reopen now fails
    read_until(source, state_is(source, LOST))
    assert "cannot be opened" in source.status.reason
    (tmp_path / "moved.avi").rename(video)
    read_until(source, state_is(source, OK))
    source.close()


def test_missing_file_or_folder_is_refused(tmp_path: Path) -> None:
    for uri in (tmp_path / "no-folder", tmp_path / "no-file.avi"):
        with pytest.raises(SourceError) as raised:
            open_source(str(uri), SourceConfig(loop=True))
        assert raised.value.exit_code == 66


def test_a_folder_read_once_ends(tmp_path: Path) -> None:
    write_images(tmp_path / "scenes", 2)
    source = open_source(str(tmp_path / "scenes"), SourceConfig(folder_fps=0))
    frames = read_until(source, lambda: source.ended)
    assert [f.name for f in frames] == ["scene-0.png", "scene-1.png"]
    assert source.status.state == "ended"


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(0.5, 3.0)
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next() == 0.5


# The whole agent, as systemd runs it, against the real broker.


def agent_with_source(config: Path, uri: str, **source: object) -> AgentProcess:
    """Start ``edge-agent run`` on ``uri``, logging to a file beside its config."""
    settings = yaml.safe_load(config.read_text())
    settings["source"] = {**settings.get("source", {}), **source}
    config.write_text(yaml.safe_dump(settings))
    command = [sys.executable, "-m", "edge_agent", "run", "--config", str(config)]
    # The child keeps its own copy of the file descriptor; ours can close.
    with (config.parent / "agent.log").open("w") as log:
        return subprocess.Popen(
            [*command, "--source", uri],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )


def camera_states(subscriber: Subscriber) -> list[str]:
    return [json.loads(p)["state"] for p in subscriber.payloads("camera")]


def wait_state(subscriber: Subscriber, state: str, after: int = 0) -> int:
    """Wait for the agent to publish ``state`` on ``camera``; its position."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = camera_states(subscriber)
        if state in states[after:]:
            return states.index(state, after)
        time.sleep(0.05)
    pytest.fail(f"camera never became {state}: {camera_states(subscriber)}")


def first_message(port: int, topic: str) -> mqtt.MQTTMessage:
    """What a client that subscribes now receives first: the retained state."""
    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-late-joiner")
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
    client.on_message = lambda c, u, message: received.put(message)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        return received.get(timeout=10)
    finally:
        client.disconnect()
        client.loop_stop()


def stop(agent: AgentProcess, config: Path) -> str:
    """SIGTERM, as systemd stops it; the agent must exit 0. Its log."""
    agent.send_signal(signal.SIGTERM)
    agent.wait(timeout=60)
    log = (config.parent / "agent.log").read_text()
    assert agent.returncode == 0, log
    return log


def test_agent_reports_a_lost_camera_and_resumes(
    agent_config: Path, broker: Broker, subscriber: Subscriber, camera: MjpegCamera
) -> None:
    agent = agent_with_source(
        agent_config,
        camera.url,
        stall_timeout_s=1.0,
        reconnect_min_s=0.2,
        reconnect_max_s=1.0,
    )
    try:
        ok_at = wait_state(subscriber, OK)
        camera.stop()
        lost_at = wait_state(subscriber, LOST, ok_at)
        beats_before = len(subscriber.payloads("heartbeat"))
        assert subscriber.wait_for("heartbeat", beats_before + 2)
        camera.start()
        wait_state(subscriber, OK, lost_at)
    finally:
        err = stop(agent, agent_config)

    lost = json.loads(subscriber.payloads("camera")[lost_at])
    assert lost["source"] == f"stream {camera.url}"
    assert lost["reason"] and lost["attempts"] >= 1
    during = [json.loads(p) for p in subscriber.payloads("heartbeat")[beats_before:]]
    assert any(beat["camera"] == LOST for beat in during)
    assert camera_states(subscriber)[-1] == "stopped"
    assert "lost" in err and "delivers frames again" in err
    assert "Traceback" not in err


def test_late_subscriber_sees_the_retained_camera_state(
    agent_config: Path, broker: Broker, subscriber: Subscriber
) -> None:
    camera = MjpegCamera()
    camera.start()
    camera.stop()  # the stream is down when the agent starts: not fatal
    agent = agent_with_source(agent_config, camera.url, reconnect_max_s=1.0)
    try:
        wait_state(subscriber, LOST)
        retained = first_message(broker.port, "mask-edge/test-kiosk/camera")
        assert retained.retain
        assert json.loads(retained.payload)["state"] in (LOST, RECONNECTING)
        assert agent.poll() is None, "a missing stream must not end the agent"
        camera.start()
        wait_state(subscriber, OK)
    finally:
        stop(agent, agent_config)
        camera.stop()


def test_screen_and_led_hear_of_each_camera_change(
    agent_config: Path, broker: Broker, camera: MjpegCamera
) -> None:
    config = load_config(agent_config)
    config.source = FAST
    agent = Agent(config, camera.url)
    heard: list[CameraStatus] = []
    agent.on_camera.append(heard.append)
    problems: list[str] = []

    def unplug_and_replug() -> None:
        """From outside the loop, as a technician would; then stop the agent."""
        try:
            for state, act in ((OK, camera.stop), (LOST, camera.start), (OK, None)):
                deadline = time.monotonic() + 30
                while not heard or heard[-1].state != state:
                    if time.monotonic() > deadline:
                        problems.append(f"no {state}: {heard}")
                        return
                    time.sleep(0.05)
                if act is not None:
                    act()
        finally:
            agent.request_stop()

    helper = threading.Thread(target=unplug_and_replug)
    helper.start()
    agent.run()  # in the main thread: it installs the signal handlers
    helper.join()

    assert not problems, problems
    states = [status.state for status in heard]
    assert states[:2] == [OK, LOST] and states[-2:] == [OK, "stopped"]
    assert agent.camera.state == "stopped"
    assert all(status.source == f"stream {camera.url}" for status in heard)


def test_stream_credentials_never_reach_logs_or_topics() -> None:
    from edge_agent.camera import describe_capture

    name = describe_capture("rtsp://admin:s3cret@127.0.0.1:8554/door", False)
    assert name == "stream rtsp://***@127.0.0.1:8554/door"
    assert describe_capture("http://127.0.0.1:8080/video", False) == (
        "stream http://127.0.0.1:8080/video"
    )
