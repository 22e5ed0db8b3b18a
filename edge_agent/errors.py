"""Errors the agent reports to its user, each with the exit code it ends with."""

from __future__ import annotations

import os


class AgentError(Exception):
    """A failure with a message the user can act on; no traceback is shown."""

    exit_code = 1


class ConfigError(AgentError):
    """The configuration file is missing, malformed or has a bad value."""

    exit_code = getattr(os, "EX_CONFIG", 78)


class ModelError(AgentError):
    """A model file is missing, truncated, or breaks its manifest's contract."""

    exit_code = getattr(os, "EX_DATAERR", 65)


class SourceError(AgentError):
    """The frame source cannot be opened."""

    exit_code = getattr(os, "EX_NOINPUT", 66)


class DisplayError(AgentError):
    """The kiosk screen or the LED cannot be opened or driven."""

    exit_code = getattr(os, "EX_UNAVAILABLE", 69)


class BrokerError(AgentError):
    """The MQTT broker refused the connection or could not be reached."""

    exit_code = getattr(os, "EX_UNAVAILABLE", 69)
