"""edge-agent: run the mask-edge kiosk agent, check its config, or watch its topics."""

# Every failure a user can act on ends here, as one message and an exit code.

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from edge_agent.camera import without_credentials
from edge_agent.config import AgentConfig, load_config
from edge_agent.errors import AgentError

log = logging.getLogger(__name__)

DEFAULT_CONFIG = Path("/etc/mask-edge/agent.yaml")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.command(args))
    except AgentError as exc:
        if args.debug:
            raise
        print(f"edge-agent: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-agent", description=__doc__)
    parser.add_argument(
        "--debug", action="store_true", help="log per-frame detail and show tracebacks"
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the agent")
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    run.add_argument("--source", help="override source.uri from the config")
    run.add_argument("--max-frames", type=_positive, help="stop after N frames")
    run.set_defaults(command=_run)

    check = commands.add_parser("check-config", help="validate a config and exit")
    check.add_argument("config", type=Path)
    check.set_defaults(command=_check_config)

    watch = commands.add_parser("watch", help="print what the agent publishes")
    watch.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    watch.add_argument("--count", type=_positive, help="exit after N events")
    watch.set_defaults(command=_watch)
    return parser


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least one."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _setup_logging(config: AgentConfig, debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else getattr(logging, config.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _run(args: argparse.Namespace) -> int:
    from edge_agent.agent import Agent

    config = load_config(args.config)
    _setup_logging(config, args.debug)
    agent = Agent(config, args.source)
    summary = agent.run(args.max_frames)
    print("\n".join(["Summary"] + [f"  {line}" for line in summary.lines()]))
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from edge_agent import mqtt_client

    config = load_config(args.config)
    # Files and variables named by the config, as this user sees them.
    mqtt_client.password(config.mqtt)
    if config.mqtt.tls:
        mqtt_client.tls_context(config.mqtt)
    source = without_credentials(config.source.uri)
    broker = f"{config.mqtt.host}:{config.mqtt.port}"
    print(
        f"{args.config}: OK (device {config.device_id}, source {source}, "
        f"broker {broker})"
    )
    return 0


def _watch(args: argparse.Namespace) -> int:
    from edge_agent.watch import watch

    config = load_config(args.config)
    _setup_logging(config, args.debug)

    def show(topic: str, payload: dict[str, Any] | str) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        print(f"{topic} {text}", flush=True)

    watch(config, show, args.count)
    return 0
