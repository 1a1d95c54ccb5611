"""``acd`` command line: serve, check-config, asterisk-config, simulate."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from acd.config import Config, ConfigError, check_file, load_config
from acd.config import asterisk as asterisk_config

if TYPE_CHECKING:
    from acd.runtime.engine import Engine


def _load(path: str) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        raise SystemExit(2) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    """Every problem of the file in one run: errors (exit 2), then warnings — what a
    valid config says that can never work (exit 0). Every secret the config names (AMI
    secrets of every server, API tokens, agents' SIP passwords) must be in the
    environment, unless ``--no-env`` (checking a file away from its server)."""
    report = check_file(args.config, None if args.no_env else os.environ)
    for line in report.errors:
        print(line, file=sys.stderr)
    for line in report.warnings:
        print(f"warning: {line}", file=sys.stderr)
    if report.errors or report.config is None:
        print(f"{args.config}: {len(report.errors)} error(s)", file=sys.stderr)
        return 2
    config = report.config
    warned = f", {len(report.warnings)} warning(s)" if report.warnings else ""
    print(f"{args.config}: OK ({len(config.queues)} queues, {len(config.agents)} "
          f"agents{warned})")
    return 0


def cmd_asterisk_config(args: argparse.Namespace) -> int:
    config = _load(args.config)
    try:
        if args.out:
            for path in asterisk_config.write(config, Path(args.out), server=args.server):
                print(path)
        else:
            for name, text in asterisk_config.render(config, server=args.server).items():
                print(f";; ---- {name}\n{text}")
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return 2
    return 0


def _ami_secrets(config: Config, no_ami: bool) -> dict[str, str] | None:
    """Every server's AMI secret from the environment; ``None`` with ``--no-ami``.
    Without AMI the engine has no device state (every phone counts as free), so a
    missing secret stops ``serve`` unless it was asked to run without AMI."""
    log = logging.getLogger("acd")
    if no_ami:
        log.warning("running WITHOUT AMI (--no-ami): no device state, every phone counts "
                    "as free; for tests and demos only")
        return None
    secrets: dict[str, str] = {}
    problems: list[str] = []
    for server in config.asterisk.server_list:
        try:
            secrets[server.name] = server.ami.secret().get_secret_value()
        except ConfigError as exc:
            problems += [f"{line} for Asterisk server {server.name!r}" for line in exc.errors]
    if problems:
        for line in problems:
            print(f"acd serve: {line}", file=sys.stderr)
        print("acd serve: refusing to start without AMI (no device state: every phone "
              "would count as free). Set the variable, or start with --no-ami (tests and "
              "demos only).", file=sys.stderr)
        raise SystemExit(2)
    return secrets


async def _serve(config: Config, secrets: dict[str, str] | None) -> None:
    from acd.runtime.engine import Engine

    first = config.asterisk.server_list[0].name
    engine = Engine(config, ami_secret=None if secrets is None else secrets[first],
                    ami_secrets=secrets)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    if config.api is not None:
        await _serve_api(engine, config, stop)
        return
    await engine.start()
    print(f"acd: serving FastAGI on {config.fastagi.host}:{engine.agi.port if engine.agi else '?'}",
          flush=True)
    await stop.wait()
    await engine.stop()


async def _serve_api(engine: Engine, config: Config, stop: asyncio.Event) -> None:
    """Engine + HTTP API on this loop: uvicorn's Server runs the app, whose lifespan
    starts the engine and, on the way out, stops and drains it."""
    from prometheus_client import CollectorRegistry

    from api.app import create_app
    from api.server import make_server

    assert config.api is not None
    app = create_app(engine, config, registry=CollectorRegistry(), manage_engine=True)
    server = make_server(app, config.api.host, config.api.port)
    serving = asyncio.create_task(server.serve(), name="acd-api")
    stopping = asyncio.create_task(stop.wait())
    while not server.started:
        done, _ = await asyncio.wait({serving, stopping}, timeout=0.05)
        if done:
            break
    if server.started:
        print(f"acd: serving FastAGI on {config.fastagi.host}:"
              f"{engine.agi.port if engine.agi else '?'}, API on "
              f"http://{config.api.host}:{server.port}", flush=True)
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    stopping.cancel()
    await serving


def cmd_serve(args: argparse.Namespace) -> int:
    config = _load(args.config)
    secrets = _ami_secrets(config, args.no_ami)
    asyncio.run(_serve(config, secrets))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="acd", description="Hotline ACD")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the engine")
    p.add_argument("--config", "-c", required=True)
    p.add_argument("--no-ami", action="store_true",
                   help="run without AMI: no device state, every phone counts as free "
                        "(tests and demos only; without it a missing AMI secret is fatal)")
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("check-config", help="validate a config file")
    p.add_argument("config")
    p.add_argument("--no-env", action="store_true",
                   help="do not require the secrets the config names in the environment "
                        "(checking a file away from its server, e.g. in CI)")
    p.set_defaults(func=cmd_check_config)
    p = sub.add_parser("asterisk-config", help="render agent endpoints for Asterisk")
    p.add_argument("--config", "-c", required=True)
    p.add_argument("--out", "-o", help="directory to write the include files to")
    p.add_argument("--server", help="the Asterisk server to render for "
                   "(asterisk.servers[].name; default: the first)")
    p.set_defaults(func=cmd_asterisk_config)
    from sim.simulate import add_simulate_parser  # simulate: --config --scenario [--seed --json]

    add_simulate_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
