"""The status LED on gpiozero's mock pins: which states each pin went through."""

from __future__ import annotations

import glob
import logging
import time
from collections.abc import Callable, Iterator

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin

from edge_agent.config import LedConfig
from edge_agent.errors import DisplayError
from edge_agent.indicator import Indicator, RecordingLamp, open_indicator, open_lamp

RED, GREEN, BLUE, ORANGE = 17, 27, 22, 23


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    pins = MockFactory(pin_class=MockPWMPin)
    yield pins
    pins.close()


@pytest.fixture
def default_factory(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """gpiozero choosing its pin factory from the environment, then forgetting it."""
    monkeypatch.setattr(Device, "pin_factory", None)
    yield
    if Device.pin_factory is not None:
        Device.pin_factory.close()


def states(factory: MockFactory, pin: int) -> list[float]:
    return [float(change.state) for change in factory.pin(pin).states]


def eventually(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.005)
    return False


def test_decision_holds_its_colour_then_idles(factory: MockFactory) -> None:
    led = open_indicator(LedConfig(kind="rgb", hold_s=0.05), factory)
    led.show_decision("mask_incorrect")
    assert led.state == "mask_incorrect"
    assert eventually(lambda: led.state == "idle")
    led.close()

    assert states(factory, RED) == [0, 1.0, 0]
    assert states(factory, GREEN) == [0, 0.5, 0]
    assert states(factory, BLUE) == [0]


def test_repeated_decisions_write_the_pins_once(factory: MockFactory) -> None:
    led = open_indicator(LedConfig(kind="rgb", hold_s=60), factory)
    for _ in range(20):
        led.show_decision("with_mask")
    led.show_decision("unknown")  # not a decision the LED shows
    led.show_decision("without_mask")
    led.close()

    assert states(factory, GREEN) == [0, 1.0, 0]
    assert states(factory, RED) == [0, 1.0, 0]
    assert led.state == "closed"


def test_without_pwm_orange_is_red_and_green(factory: MockFactory) -> None:
    led = open_indicator(LedConfig(kind="rgb", pwm=False, hold_s=60), factory)
    led.show_decision("mask_incorrect")
    led.close()
    assert states(factory, RED) == [0, 1, 0]
    assert states(factory, GREEN) == [0, 1, 0]
    assert states(factory, BLUE) == [0]


def alternates(values: list[float], count: int) -> bool:
    """At least ``count`` changes after the initial off, on and off in turn."""
    changes = values[1:]
    return len(changes) >= count and all(
        value == (1.0 if i % 2 == 0 else 0.0) for i, value in enumerate(changes)
    )


def test_camera_blinks_slowly_and_a_fault_fast(factory: MockFactory) -> None:
    lamp = open_lamp(LedConfig(kind="rgb"), factory)
    led = Indicator(lamp, slow_blink_s=0.03, fast_blink_s=0.01)
    for _ in range(10):  # once a frame: must not restart the blink
        led.camera_unavailable()
    assert eventually(lambda: len(states(factory, BLUE)) >= 5)
    assert states(factory, RED) == [0]

    led.fault()
    assert eventually(lambda: len(states(factory, RED)) >= 5)
    led.close()

    blue, red = states(factory, BLUE), states(factory, RED)
    assert alternates(blue, 4) and blue[-1] == 0
    assert alternates(red, 4) and red[-1] == 0
    assert states(factory, GREEN) == [0]
    # Lower bounds only: a blink never changes sooner than its on time.
    blue_gaps = [c.timestamp for c in factory.pin(BLUE).states[2:4]]
    assert all(gap >= 0.03 * 0.9 for gap in blue_gaps)


def test_verbs_map_to_lamp_calls_once_each() -> None:
    lamp = RecordingLamp()
    led = Indicator(lamp, hold_s=60, slow_blink_s=1.0, fast_blink_s=0.15)
    for _ in range(3):
        led.camera_unavailable()
        led.show_decision("without_mask")
        led.show_decision("without_mask")
    led.fault()
    led.fault()
    led.idle()
    led.close()
    led.show_decision("with_mask")  # after close: ignored

    assert lamp.calls == [
        ("off",),
        ("blink", "blue", 1.0, 1.0),
        ("show", "red", 1.0),
        ("blink", "blue", 1.0, 1.0),
        ("show", "red", 1.0),
        ("blink", "blue", 1.0, 1.0),
        ("show", "red", 1.0),
        ("blink", "red", 0.15, 0.15),
        ("off",),
        ("close",),
    ]


def test_three_leds_active_low(factory: MockFactory) -> None:
    config = LedConfig(kind="three", pwm=False, active_high=False, hold_s=60)
    led = open_indicator(config, factory)
    led.show_decision("with_mask")
    led.show_decision("mask_incorrect")
    led.close()

    # Active low: high is off. Closing leaves each pin an undriven input, which
    # the mock shows as low (its pull); no current flows, so the LED stays off.
    assert states(factory, GREEN) == [0, 1, 0, 1, 0]
    assert states(factory, ORANGE) == [0, 1, 0, 1, 0]
    assert states(factory, RED) == [0, 1, 0]
    assert {factory.pin(p).function for p in (GREEN, ORANGE, RED)} == {"input"}


def test_idle_level_dims_all_colours(factory: MockFactory) -> None:
    led = open_indicator(LedConfig(kind="rgb", idle_level=0.2, hold_s=60), factory)
    led.show_decision("with_mask")
    led.close()
    assert states(factory, RED) == [0, 0.2, 0]
    assert states(factory, GREEN) == [0, 0.2, 1.0, 0]


def test_idle_level_without_pwm_is_off(
    factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        led = open_indicator(
            LedConfig(kind="three", pwm=False, idle_level=0.5), factory
        )
    led.close()
    assert "idle_level 0.5 needs pwm: true" in caplog.text
    assert states(factory, GREEN) == [0]


def test_disabled_led_touches_no_pins(factory: MockFactory) -> None:
    led = open_indicator(LedConfig(kind="none"), factory)
    led.show_decision("with_mask")
    led.fault()
    led.close()
    assert led.state == "closed"
    assert factory.pins == {}


def test_pin_factory_from_the_environment(
    default_factory: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    monkeypatch.setenv("GPIOZERO_MOCK_PIN_CLASS", "mockpwmpin")
    led = open_indicator(LedConfig(kind="rgb", hold_s=60))
    led.show_decision("without_mask")
    assert isinstance(Device.pin_factory, MockFactory)
    assert Device.pin_factory.pin(RED).state == 1.0
    led.close()


def test_unknown_pin_factory_says_what_to_change(
    default_factory: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-factory")
    with pytest.raises(DisplayError) as caught:
        open_indicator(LedConfig(kind="rgb"))
    assert "no-such-factory" in str(caught.value)
    assert "led.kind: none" in str(caught.value)


@pytest.mark.skipif(bool(glob.glob("/dev/gpiochip*")), reason="this machine has GPIO")
def test_no_gpio_here_says_what_to_change(
    default_factory: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    with pytest.raises(DisplayError) as caught:
        open_indicator(LedConfig(kind="three"))
    assert str(caught.value).startswith("no GPIO for the LED")
    assert "GPIOZERO_PIN_FACTORY=mock" in str(caught.value)


def test_pin_in_use_names_the_pins(factory: MockFactory) -> None:
    first = open_indicator(LedConfig(kind="rgb"), factory)
    with pytest.raises(DisplayError, match="pins 17, 27, 22 cannot be used"):
        open_indicator(LedConfig(kind="rgb"), factory)
    first.close()
