"""The agent drives the screen and the LED from real scenes (mock pins, PNG screen)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest
import yaml
from conftest import DATASET, Broker, Subscriber
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin

from edge_agent.agent import Agent
from edge_agent.config import load_config

RED, GREEN, BLUE = 17, 27, 22
# Val scenes whose every face wears a mask, large and clear.
MASKED_SCENES = ("maksssksksss109", "maksssksksss252", "maksssksksss266")


@pytest.fixture
def mock_pins() -> Iterator[MockFactory]:
    factory = MockFactory(pin_class=MockPWMPin)
    Device.pin_factory = factory
    yield factory
    factory.close()
    Device.pin_factory = None


def kiosk_config(agent_config: Path, tmp_path: Path) -> Path:
    settings = yaml.safe_load(agent_config.read_text())
    settings["led"] = {
        "kind": "rgb",
        "red_pin": RED,
        "green_pin": GREEN,
        "blue_pin": BLUE,
        "hold_s": 30,
    }
    agent_config.write_text(yaml.safe_dump(settings))
    return agent_config


def test_decisions_light_the_led_and_fill_the_screen(
    tmp_path: Path,
    agent_config: Path,
    broker: Broker,
    subscriber: Subscriber,
    mock_pins: MockFactory,
) -> None:
    folder = tmp_path / "scenes"
    folder.mkdir()
    for name in MASKED_SCENES:
        (folder / f"{name}.png").symlink_to(DATASET / "images" / f"{name}.png")
    pins = {pin: mock_pins.pin(pin) for pin in (RED, GREEN, BLUE)}
    config = load_config(kiosk_config(agent_config, tmp_path))

    agent = Agent(config, str(folder))
    seen: list[dict[str, object]] = []
    agent.on_decision.append(seen.append)
    summary = agent.run()

    assert summary.events_published == len(seen) >= len(MASKED_SCENES)
    assert {event["verdict"] for event in seen} == {"with_mask"}
    green = [float(change.state) for change in pins[GREEN].states]
    red = [float(change.state) for change in pins[RED].states]
    assert 1.0 in green, "a with_mask decision must light the LED green"
    assert max(red) == 0.0, "no red for an all-masked scene"
    assert green[-1] == 0.0, "the LED is off once the agent stops"

    screen = cv2.imread(str(tmp_path / "screen" / "latest.png"))
    assert screen is not None and screen.shape[:2] == (720, 1280)
    assert agent.kiosk.screen.rendered >= 1


def test_missing_framebuffer_leaves_the_screen_out(
    tmp_path: Path,
    agent_config: Path,
    broker: Broker,
    subscriber: Subscriber,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = yaml.safe_load(agent_config.read_text())
    settings["display"] = {
        "sink": "framebuffer",
        "device": "/dev/fb7",
        "sysfs_root": str(tmp_path / "no-sysfs"),
    }
    agent_config.write_text(yaml.safe_dump(settings))
    folder = tmp_path / "scenes"
    folder.mkdir()
    name = MASKED_SCENES[0]
    (folder / f"{name}.png").symlink_to(DATASET / "images" / f"{name}.png")

    agent = Agent(load_config(agent_config), str(folder))
    summary = agent.run()

    assert "Kiosk screen left out" in caplog.text and "/dev/fb7" in caplog.text
    assert summary.events_published >= 1
    assert subscriber.wait_for("events", summary.events_published)
