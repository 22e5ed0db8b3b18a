"""Write a device's agent.yaml: the commented example, with a device's values.

``config/agent.yaml`` explains every key beside values for a workstation
checkout (relative paths, a PNG screen). A device wants the built-in defaults
(absolute paths under /var/lib and /opt, the framebuffer) with the same
comments, so each value is replaced where it stands and the comments stay.

Usage: device_config.py EXAMPLE OUT [KEY.PATH=VALUE ...]
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from edge_agent.config import AgentConfig, load_config
from edge_agent.errors import ConfigError


def leaves(node: yaml.Node, prefix: str = "") -> Iterator[tuple[str, yaml.Node]]:
    """Every ``key.path`` of the file with the node holding its value."""
    assert isinstance(node, yaml.MappingNode)
    for key, value in node.value:
        if isinstance(value, yaml.MappingNode):
            yield from leaves(value, f"{prefix}{key.value}.")
        else:
            yield f"{prefix}{key.value}", value


def default(config: Any, path: str) -> Any:
    for part in path.split("."):
        config = getattr(config, part)
    assert not dataclasses.is_dataclass(config), path
    return config


def render(value: Any) -> str:
    """One YAML scalar, quoted only where YAML needs it (``"0"`` stays a string)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 16)
    return text.removesuffix("\n...\n").strip()


def device_text(example: str, overrides: dict[str, str]) -> str:
    defaults = AgentConfig()
    edits = []
    root = yaml.compose(example, Loader=yaml.SafeLoader)
    assert root is not None, "the example config is empty"
    for path, node in leaves(root):
        if path in overrides:
            value: Any = yaml.safe_load(overrides.pop(path))
        else:
            value = default(defaults, path)
        if yaml.safe_load(yaml.serialize(node)) != value:
            edits.append((node.start_mark.index, node.end_mark.index, render(value)))
    if overrides:
        raise SystemExit(f"device_config: not in the example: {', '.join(overrides)}")
    text = example
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + _keep_comment_column(text, end, end - start, new)
    return text


def _keep_comment_column(text: str, end: int, old_length: int, new: str) -> str:
    """The rest of the line after a value, its comment moved back where it was."""
    rest = text[end:]
    gap = len(rest) - len(rest.lstrip(" "))
    if not rest[gap:].startswith("#"):
        return rest
    return " " * max(1, gap + old_length - len(new)) + rest[gap:]


def main(argv: list[str]) -> int:
    example, out, *settings = argv
    overrides = dict(setting.split("=", 1) for setting in settings)
    header = f"# Written by make install from {Path(example).name}, device values.\n"
    Path(out).write_text(header + device_text(Path(example).read_text(), overrides))
    try:
        load_config(Path(out))
    except ConfigError as exc:
        print(f"device_config: {out} is not valid:\n{exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
