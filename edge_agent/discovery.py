"""Home Assistant MQTT discovery: the kiosk announced as one device.

One retained message under ``<prefix>/device/<node_id>/config`` (Home
Assistant's device-based discovery) lists every entity: the last verdict,
a count of people per verdict, the compliance rate, the frame rate, the camera
state, the outbox backlog, and an ``event`` entity fired by each compliance event.
Availability follows the agent's retained ``status`` topic. Events sent from
the outbox after an outage fire the event entity late; their ``time`` tells
when they happened.
"""

from __future__ import annotations

import logging
import re
from importlib import metadata
from typing import Any

from edge_agent.config import AgentConfig

log = logging.getLogger(__name__)

MANUFACTURER = "mask-edge"


def node_id(config: AgentConfig) -> str:
    """The device's id in discovery topics: letters, digits, ``_`` and ``-``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"mask_edge_{config.device_id}")


def config_topic(config: AgentConfig) -> str:
    return f"{config.homeassistant.discovery_prefix}/device/{node_id(config)}/config"


def birth_topic(config: AgentConfig) -> str:
    """Where Home Assistant says ``online`` when it (re)starts."""
    return f"{config.homeassistant.discovery_prefix}/status"


def software_version() -> str:
    try:
        return metadata.version("mask-edge")
    except metadata.PackageNotFoundError:
        return "unknown"


def device_config(config: AgentConfig, model_info: dict[str, Any]) -> dict[str, Any]:
    """The discovery payload for this kiosk and the model it runs."""
    node = node_id(config)
    version = software_version()
    return {
        "dev": {
            "ids": [node],
            "name": f"Mask kiosk {config.device_id}",
            "mf": MANUFACTURER,
            "mdl": "Face-mask compliance kiosk",
            "sw": f"{version} (model {model_info.get('version', 'unknown')})",
        },
        "o": {"name": "mask-edge", "sw": version},
        "availability_topic": config.topic("status"),
        # "stopped" after a clean exit means unavailable too.
        "availability_template": "{{ 'online' if value == 'online' else 'offline' }}",
        "qos": 1,
        "cmps": _components(config, node, list(model_info.get("labels", []))),
    }


def _components(
    config: AgentConfig, node: str, labels: list[str]
) -> dict[str, dict[str, Any]]:
    components = {
        **_event_components(config.topic("events"), labels),
        **_heartbeat_components(config.topic("heartbeat")),
        **_count_components(config.topic("heartbeat"), labels),
    }
    for key, component in components.items():
        component["unique_id"] = f"{node}_{key}"
    return components


def _event_components(events: str, labels: list[str]) -> dict[str, dict[str, Any]]:
    """The last verdict and the event entity, both fed by each compliance event."""
    return {
        "last_verdict": _sensor(
            "Last verdict",
            events,
            "{{ value_json.verdict }}",
            device_class="enum",
            options=labels,
            icon="mdi:face-mask",
        ),
        "compliance": {
            "platform": "event",
            "name": "Compliance event",
            "state_topic": events,
            "event_types": labels,
            "value_template": (
                "{{ {'event_type': value_json.verdict, "
                "'confidence': value_json.confidence, "
                "'compliant': value_json.compliant, "
                "'id': value_json.id} | to_json }}"
            ),
            "icon": "mdi:face-mask-outline",
        },
    }


def _heartbeat_components(heartbeat: str) -> dict[str, dict[str, Any]]:
    return {
        "compliance_rate": _sensor(
            "Compliance rate",
            heartbeat,
            "{{ value_json.compliance_rate }}",
            unit_of_measurement="%",
            state_class="measurement",
            icon="mdi:percent",
        ),
        "fps": _sensor(
            "Frame rate",
            heartbeat,
            "{{ value_json.fps }}",
            unit_of_measurement="fps",
            state_class="measurement",
            entity_category="diagnostic",
        ),
        "camera": _sensor(
            "Camera", heartbeat, "{{ value_json.camera }}", icon="mdi:cctv"
        ),
        "outbox_backlog": _sensor(
            "Events waiting for the broker",
            heartbeat,
            "{{ value_json.outbox.backlog | default(0) }}",
            state_class="measurement",
            entity_category="diagnostic",
        ),
    }


def _count_components(heartbeat: str, labels: list[str]) -> dict[str, dict[str, Any]]:
    """People per verdict: the heartbeat's ``decisions``, one per person.

    Its ``verdicts`` count classified frames, dozens for one person.
    """
    return {
        f"count_{label}": _sensor(
            f"People {label.replace('_', ' ')}",
            heartbeat,
            f"{{{{ value_json.decisions.{label} | default(0) }}}}",
            state_class="total_increasing",
            unit_of_measurement="people",
        )
        for label in labels
    }


def _sensor(name: str, topic: str, template: str, **extra: Any) -> dict[str, Any]:
    return {
        "platform": "sensor",
        "name": name,
        "state_topic": topic,
        "value_template": template,
        **extra,
    }
