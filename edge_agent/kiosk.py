"""The kiosk at the door: the screen and the LED, following the agent's news."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from edge_agent.config import AgentConfig
from edge_agent.crop import Box
from edge_agent.display import Screen, open_screen
from edge_agent.errors import DisplayError
from edge_agent.indicator import Indicator, open_indicator
from edge_agent.watchdog import CameraStatus

log = logging.getLogger(__name__)


class Kiosk:
    """Tells the screen and the LED about faces, decisions, the camera and faults."""

    def __init__(self, screen: Screen, indicator: Indicator) -> None:
        self.screen = screen
        self.indicator = indicator

    @classmethod
    def open(cls, config: AgentConfig) -> Kiosk:
        """The configured screen and LED; one that cannot open is left out.

        Events over MQTT are the kiosk's first duty: a missing screen or LED is
        a degraded service, reported, not a reason to stop (and crash-loop).
        """
        try:
            screen = open_screen(config.display)
        except DisplayError as exc:
            log.warning("Kiosk screen left out: %s", exc)
            screen = Screen(None)
        try:
            indicator = open_indicator(config.led)
        except DisplayError as exc:
            log.warning("Status LED left out: %s", exc)
            indicator = Indicator(None)
        return cls(screen, indicator)

    def faces(self, image: np.ndarray, shown: list[tuple[Box, str]]) -> None:
        self.screen.update(image, shown)

    def decided(self, event: dict[str, Any]) -> None:
        self.screen.decision(event["verdict"])
        self.indicator.show_decision(event["verdict"])

    def camera(self, status: CameraStatus) -> None:
        if status.delivering:
            self.indicator.idle()
        elif status.state in ("lost", "reconnecting", "starting"):
            self.screen.camera_unavailable()
            self.indicator.camera_unavailable()

    def fault(self) -> None:
        self.indicator.fault()

    def recovered(self) -> None:
        """Frames are processed again after a fault."""
        self.indicator.idle()

    def state(self) -> dict[str, Any]:
        """What the heartbeat reports of the screen and LED."""
        return {
            "screen": self.screen.scene,
            "screens_drawn": self.screen.rendered,
            "screens_dropped": self.screen.dropped,
            "led": self.indicator.state,
        }

    def close(self) -> None:
        self.screen.stop()
        self.indicator.close()
