"""``acd`` command line: serve, check-config, asterisk-config, simulate, report, replay."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from acd.config import Config, ConfigError, load_config
from acd.config import asterisk as asterisk_config


def _load(path: str) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        raise SystemExit(2) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args.config)
    print(f"{args.config}: OK ({len(config.queues)} queues, {len(config.agents)} agents)")
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


async def _serve(config: Config, *, no_ami: bool = False) -> None:
    """One serve path: the node (engine, FastAGI, AMI, store, lease) owns every resource;
    uvicorn runs the API inside it when the config has ``api:``. SIGINT/SIGTERM stop the
    API first, then the node hands its callers back and drains (AsyncExitStack)."""
    from api.server import make_server
    from app.node import Node, ami_secrets_from_env

    secrets = None if no_ami else ami_secrets_from_env(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with Node(config, ami_secrets=secrets) as node:
        if node.app is None:
            print(f"acd: serving FastAGI on {config.fastagi.host}:{node.agi_port}",
                  flush=True)
            await stop.wait()
            return
        assert config.api is not None
        server = make_server(node.app, config.api.host, config.api.port)
        serving = asyncio.create_task(server.serve(), name="acd-api")
        stopping = asyncio.create_task(stop.wait())
        try:
            while not server.started:
                done, _ = await asyncio.wait({serving, stopping}, timeout=0.05)
                if done:
                    break
            if server.started:
                print(f"acd: serving FastAGI on {config.fastagi.host}:{node.agi_port}, "
                      f"API on http://{config.api.host}:{server.port}", flush=True)
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            server.should_exit = True
            stopping.cancel()
            await serving


def cmd_serve(args: argparse.Namespace) -> int:
    config = _load(args.config)
    try:
        asyncio.run(_serve(config, no_ami=args.no_ami))
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        print("acd serve needs the AMI secret (device state); --no-ami runs without AMI, "
              "for tests and demos only", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="acd", description="Hotline ACD")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the engine")
    p.add_argument("--config", "-c", required=True)
    p.add_argument("--no-ami", action="store_true",
                   help="run without AMI: no device state, every phone counts as free "
                        "(tests and demos only)")
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("check-config", help="validate a config file")
    p.add_argument("config")
    p.set_defaults(func=cmd_check_config)
    p = sub.add_parser("asterisk-config", help="render agent endpoints for Asterisk")
    p.add_argument("--config", "-c", required=True)
    p.add_argument("--out", "-o", help="directory to write the include files to")
    p.add_argument("--server", help="the Asterisk server to render for "
                   "(asterisk.servers[].name; default: the first)")
    p.set_defaults(func=cmd_asterisk_config)
    from sim.cli import add_simulate_parser  # simulate: --config --scenario [--seed --json]

    add_simulate_parser(sub)
    from app.history_cli import add_history_parsers  # report, replay: the call history

    add_history_parsers(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
