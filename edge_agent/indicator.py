"""The status LED by the door: one RGB LED or three single LEDs, through gpiozero.

Signals: the last decision's colour, steady for ``led.hold_s`` seconds, then
idle (off, or dim white at ``led.idle_level``); a slow blink while the camera
is unavailable (blue, or the orange LED of three); a fast red blink on a fault;
off when the agent stops. The last call wins. gpiozero picks its pin library
from ``GPIOZERO_PIN_FACTORY`` as usual (``mock`` runs without hardware).
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any, Protocol

from edge_agent.config import LedConfig
from edge_agent.errors import DisplayError

log = logging.getLogger(__name__)

DECISION_COLOURS = {
    "with_mask": "green",
    "mask_incorrect": "orange",
    "without_mask": "red",
}
# Colours as red, green, blue levels; without PWM orange is red + green.
RGB = {
    "green": (0.0, 1.0, 0.0),
    "orange": (1.0, 0.5, 0.0),
    "red": (1.0, 0.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "white": (1.0, 1.0, 1.0),
}
# Which of three single LEDs light for a colour; there is no blue one.
THREE_LIT = {
    "green": ("green",),
    "orange": ("orange",),
    "red": ("red",),
    "blue": ("orange",),
    "white": ("green", "orange", "red"),
}


class Lamp(Protocol):
    """The LED hardware: a named colour steady, blinking, or off."""

    def show(self, colour: str, level: float) -> None: ...

    def blink(self, colour: str, on_s: float, off_s: float) -> None: ...

    def off(self) -> None: ...

    def close(self) -> None: ...


class RgbLamp:
    """One RGB LED on three pins (gpiozero ``RGBLED``)."""

    def __init__(self, config: LedConfig, pin_factory: Any) -> None:
        from gpiozero import RGBLED

        self.pwm = config.pwm
        self.led = RGBLED(
            config.red_pin,
            config.green_pin,
            config.blue_pin,
            active_high=config.active_high,
            pwm=config.pwm,
            pin_factory=pin_factory,
        )

    def _rgb(self, colour: str, level: float = 1.0) -> tuple[float, float, float]:
        red, green, blue = RGB[colour]
        if not self.pwm:
            return (float(red > 0), float(green > 0), float(blue > 0))
        return (red * level, green * level, blue * level)

    def show(self, colour: str, level: float) -> None:
        self.led.color = self._rgb(colour, level)

    def blink(self, colour: str, on_s: float, off_s: float) -> None:
        self.led.blink(on_s, off_s, on_color=self._rgb(colour))

    def off(self) -> None:
        self.led.off()

    def close(self) -> None:
        self.led.off()
        self.led.close()


class ThreeLamps:
    """Three single LEDs, green, orange and red (gpiozero ``PWMLED`` or ``LED``)."""

    def __init__(self, config: LedConfig, pin_factory: Any) -> None:
        from gpiozero import LED, PWMLED

        kind = PWMLED if config.pwm else LED
        pins = {
            "green": config.green_pin,
            "orange": config.orange_pin,
            "red": config.red_pin,
        }
        self.leds: dict[str, Any] = {}
        try:
            for name, pin in pins.items():
                self.leds[name] = kind(
                    pin, active_high=config.active_high, pin_factory=pin_factory
                )
        except BaseException:
            self.close()
            raise

    def show(self, colour: str, level: float) -> None:
        for name, led in self.leds.items():
            led.value = level if name in THREE_LIT[colour] else 0

    def blink(self, colour: str, on_s: float, off_s: float) -> None:
        for name, led in self.leds.items():
            if name in THREE_LIT[colour]:
                led.blink(on_s, off_s)
            else:
                led.off()

    def off(self) -> None:
        for led in self.leds.values():
            led.off()

    def close(self) -> None:
        for led in self.leds.values():
            led.off()
            led.close()


def open_lamp(config: LedConfig, pin_factory: Any = None) -> Lamp | None:
    """The LED ``led.kind`` names, or None; a clear error when GPIO is missing."""
    if config.kind == "none":
        return None
    try:
        import gpiozero
    except ImportError as exc:
        raise DisplayError(
            "led.kind is set but gpiozero is not installed: pip install "
            "'mask-edge[gpio]', or set led.kind: none"
        ) from exc
    kind = RgbLamp if config.kind == "rgb" else ThreeLamps
    with warnings.catch_warnings(record=True) as fallbacks:
        warnings.simplefilter("always")
        try:
            return kind(config, pin_factory)
        except gpiozero.BadPinFactory as exc:
            raise DisplayError(
                f"no GPIO for the LED ({exc}): on a Raspberry Pi install "
                "python3-lgpio; set GPIOZERO_PIN_FACTORY=mock to run without "
                "hardware, or led.kind: none"
            ) from exc
        except (gpiozero.GPIOZeroError, OSError) as exc:
            raise DisplayError(
                f"LED on pins {_pins(config)} cannot be used: {exc}; check "
                "led.*_pin, or set led.kind: none"
            ) from exc
        finally:
            for caught in fallbacks:
                log.debug("gpiozero: %s", caught.message)


def _pins(config: LedConfig) -> str:
    if config.kind == "rgb":
        return f"{config.red_pin}, {config.green_pin}, {config.blue_pin}"
    return f"{config.green_pin}, {config.orange_pin}, {config.red_pin}"


class RecordingLamp:
    """A fake LED that records each call, for tests."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def show(self, colour: str, level: float) -> None:
        self.calls.append(("show", colour, level))

    def blink(self, colour: str, on_s: float, off_s: float) -> None:
        self.calls.append(("blink", colour, on_s, off_s))

    def off(self) -> None:
        self.calls.append(("off",))

    def close(self) -> None:
        self.calls.append(("close",))


class Indicator:
    """The status LED, driven with plain verbs; does nothing without a lamp."""

    def __init__(
        self,
        lamp: Lamp | None,
        hold_s: float = 3.0,
        idle_level: float = 0.0,
        slow_blink_s: float = 1.0,
        fast_blink_s: float = 0.15,
    ) -> None:
        self.hold_s = hold_s
        self.idle_level = idle_level
        self.slow_blink_s = slow_blink_s
        self.fast_blink_s = fast_blink_s
        self.state = "off"
        self.failures = 0
        self._lock = threading.Lock()
        self._hold_until = 0.0
        self._timer: threading.Timer | None = None
        self._lamp = lamp
        self.idle()

    def show_decision(self, label: str) -> None:
        """Light the decision's colour for ``hold_s`` seconds; others are ignored."""
        colour = DECISION_COLOURS.get(label)
        if colour is None:
            return
        with self._lock:
            if self.state == "closed":
                return
            self._hold_until = time.monotonic() + self.hold_s
            self._apply(label, lambda lamp: lamp.show(colour, 1.0))
            if self._timer is None:
                self._start_timer(self.hold_s)

    def camera_unavailable(self) -> None:
        """Blink slowly until told something else."""
        slow = self.slow_blink_s
        with self._lock:
            self._apply(
                "camera_unavailable", lambda lamp: lamp.blink("blue", slow, slow)
            )

    def fault(self) -> None:
        """Blink red fast until told something else."""
        fast = self.fast_blink_s
        with self._lock:
            self._apply("fault", lambda lamp: lamp.blink("red", fast, fast))

    def idle(self) -> None:
        """Off, or dim white at ``led.idle_level``."""
        with self._lock:
            self._apply("idle", self._show_idle)

    def close(self) -> None:
        """Turn the LED off and release its pins."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._apply("closed", lambda lamp: lamp.close())

    def _show_idle(self, lamp: Lamp) -> None:
        if self.idle_level > 0:
            lamp.show("white", self.idle_level)
        else:
            lamp.off()

    def _apply(self, state: str, change: Callable[[Lamp], None]) -> None:
        """Move to ``state`` unless already there; call with the lock held."""
        if state == self.state or self.state == "closed":
            return
        self.state = state
        if self._lamp is None:
            return
        try:
            change(self._lamp)
        except Exception as exc:
            self.failures += 1
            if self.failures == 1:
                log.warning(
                    "Status LED cannot be set to %s (%s); the kiosk runs on without it",
                    state,
                    exc,
                )
                log.debug("Status LED failure", exc_info=True)

    def _start_timer(self, delay: float) -> None:
        self._timer = threading.Timer(delay, self._hold_over)
        self._timer.daemon = True
        self._timer.start()

    def _hold_over(self) -> None:
        with self._lock:
            self._timer = None
            if self.state not in DECISION_COLOURS:
                return
            remaining = self._hold_until - time.monotonic()
            if remaining > 0:
                self._start_timer(remaining)
                return
            self._apply("idle", self._show_idle)


def open_indicator(config: LedConfig, pin_factory: Any = None) -> Indicator:
    """The LED the config describes, idle; a silent one when ``led.kind: none``."""
    idle_level = config.idle_level
    if idle_level > 0 and not config.pwm:
        log.warning("LED idle_level %s needs pwm: true; idle is off", idle_level)
        idle_level = 0.0
    lamp = open_lamp(config, pin_factory)
    if lamp is not None:
        log.info("Status LED: %s on pins %s", config.kind, _pins(config))
    return Indicator(lamp, config.hold_s, idle_level)
