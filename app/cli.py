"""``acd`` command line: serve, check-config, asterisk-config, simulate, report, replay."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from pathlib import Path

from acd.config import Config, ConfigError, check_file, load_config
from acd.config import asterisk as asterisk_config


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


def _install_options(args: argparse.Namespace) -> asterisk_config.InstallOptions:
    extra: dict[str, str] = {}
    for item in args.set or ():
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError([f"--set {item}: expected NAME=VALUE"])
        extra[name] = value
    try:
        first, _, last = args.rtp.partition("-")
        rtp = (int(first), int(last))
    except ValueError:
        raise ConfigError([f"--rtp {args.rtp}: expected FIRST-LAST, e.g. 10000-20000"]) \
            from None
    return asterisk_config.InstallOptions(
        bind=args.bind, sip_port=args.sip_port, rtp_start=rtp[0], rtp_end=rtp[1],
        agi_urls=args.agi_urls, ami_permit=args.ami_permit, extra=extra)


def cmd_asterisk_config(args: argparse.Namespace) -> int:
    """The Asterisk side of the config: the generated includes (default), a dedicated
    box's whole configuration (``--full``), or the ``*_acd.conf`` files and the lines to
    add for an existing PBX (``--include``)."""
    config = _load(args.config)
    instructions = ""
    try:
        if args.full or args.include:
            options = _install_options(args)
            templates = asterisk_config.find_templates(args.templates)
            if args.full:
                files = asterisk_config.render_full(config, server=args.server,
                                                    options=options, templates=templates)
            else:
                files, instructions = asterisk_config.render_include(
                    config, server=args.server, options=options, templates=templates)
        else:
            files = asterisk_config.render(config, server=args.server)
        if args.out:
            out = Path(args.out)
            foreign = sorted(p.name for p in out.glob("*.conf") if p.name not in files) \
                if args.full and out.is_dir() else []
            for path in asterisk_config.write_files(files, out):
                print(path)
            if foreign:
                print(f"note: {len(foreign)} other .conf file(s) in {out} are not ours "
                      f"({', '.join(foreign[:5])}{' …' if len(foreign) > 5 else ''}); "
                      "Asterisk may read some of them: start from an empty directory",
                      file=sys.stderr)
        else:
            for name, text in files.items():
                print(f";; ---- {name}\n{text}")
    except (ConfigError, asterisk_config.TemplateError) as exc:
        lines = exc.errors if isinstance(exc, ConfigError) else [str(exc)]
        for line in lines:
            print(line, file=sys.stderr)
        return 2
    if instructions:
        print()
        print(instructions, end="")
    return 0


#: Set to 1 to start with the examples' placeholder secrets (a smoke test of the
#: shipped examples; never in production).
ALLOW_PLACEHOLDERS = "ACD_ALLOW_PLACEHOLDER_SECRETS"


def _refuse_placeholder_secrets(config: Config) -> None:
    """A secret left as the example's (``change-me``…) stops ``serve``."""
    from acd.config.advice import placeholder_secrets

    lines = placeholder_secrets(config, os.environ)
    if not lines:
        return
    if os.environ.get(ALLOW_PLACEHOLDERS) == "1":
        logging.getLogger("acd").warning(
            "starting with placeholder secrets (%s=1): %s", ALLOW_PLACEHOLDERS,
            "; ".join(lines))
        return
    for line in lines:
        print(f"acd serve: {line}", file=sys.stderr)
    print(f"acd serve: refusing to start with placeholder secrets (set {ALLOW_PLACEHOLDERS}"
          "=1 only to smoke-test the shipped examples)", file=sys.stderr)
    raise SystemExit(2)


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
    """One serve path: the node (engine, FastAGI, AMI, store, lease) owns every resource;
    uvicorn runs the API inside it when the config has ``api:``. SIGINT/SIGTERM stop the
    API first, then the node hands its callers back and drains (AsyncExitStack)."""
    from acd.runtime.fastagi import raise_file_limit
    from api.server import make_server
    from app.node import Node

    raise_file_limit()  # each waiting caller is a socket
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with Node(config, ami_secrets=secrets) as node:
        _freeze_startup_heap()
        if node.app is None:
            print(f"acd: serving FastAGI on {config.fastagi.host}:{node.agi_port}",
                  flush=True)
            await stop.wait()
            return
        assert config.api is not None
        server = make_server(node.app, config.api.host, config.api.port,
                             tls_cert=config.api.tls_cert, tls_key=config.api.tls_key)
        serving = asyncio.create_task(server.serve(), name="acd-api")
        stopping = asyncio.create_task(stop.wait())
        try:
            while not server.started:
                done, _ = await asyncio.wait({serving, stopping}, timeout=0.05)
                if done:
                    break
            if server.started:
                scheme = "https" if config.api.tls_cert else "http"
                print(f"acd: serving FastAGI on {config.fastagi.host}:{node.agi_port}, "
                      f"API on {scheme}://{config.api.host}:{server.port}", flush=True)
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            server.should_exit = True
            stopping.cancel()
            await serving


def _freeze_startup_heap() -> None:
    """What start-up built (modules, the config, the router's indexes: hundreds of
    thousands of objects that live as long as the process) leaves the collector's walks:
    a full collection under load then walks the calls' objects only (the capacity
    benchmark measured full collections of 0.4-0.6 s at 10,000 waiting callers)."""
    gc.collect()
    gc.freeze()
    logging.getLogger("acd").info(
        "start-up heap frozen: %d objects out of the collector's walks",
        gc.get_freeze_count())


def cmd_serve(args: argparse.Namespace) -> int:
    config = _load(args.config)
    _refuse_placeholder_secrets(config)
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
    p = sub.add_parser(
        "asterisk-config", help="render the Asterisk side (agents, trunks, carriers; "
        "--full: a dedicated Asterisk; --include: an existing PBX)",
        description="Without --full/--include: the generated include files "
        "(pjsip_acd.conf, queues_acd.conf, extensions_acd.conf) that the shipped "
        "asterisk_conf/ includes. --full: the whole configuration of a dedicated Asterisk "
        "(every asterisk_conf/ template filled in). --include: only *_acd.conf files for "
        "an existing PBX, and the lines to add to its own files. See docs/asterisk.md.")
    p.add_argument("--config", "-c", required=True)
    p.add_argument("--out", "-o", help="directory to write the files to (default: print)")
    p.add_argument("--server", help="the Asterisk server to render for "
                   "(asterisk.servers[].name; default: the first)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--full", action="store_true",
                      help="the whole configuration of a dedicated Asterisk")
    mode.add_argument("--include", action="store_true",
                      help="*_acd.conf files and #include lines for an existing PBX")
    p.add_argument("--bind", default="0.0.0.0",
                   help="the address Asterisk binds SIP *and* AMI to (default 0.0.0.0)")
    p.add_argument("--sip-port", type=int, default=5060)
    p.add_argument("--rtp", default="10000-20000", help="RTP port range (FIRST-LAST)")
    p.add_argument("--agi-urls", help="ACD_AGI_URLS: how Asterisk reaches the engine(s), "
                   "e.g. agi://10.0.0.5:4573&agi://10.0.0.6:4573 (default: from fastagi)")
    p.add_argument("--ami-permit", help="who may log in to AMI, addr/mask (default: the "
                   "engine's address from the config)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="any other @@PLACEHOLDER@@, e.g. AST_LOG_DIR=/var/log/asterisk")
    p.add_argument("--templates", help="the asterisk_conf/ templates (default: the "
                   "installed ones)")
    p.set_defaults(func=cmd_asterisk_config)
    from sim.cli import add_simulate_parser  # simulate: --config --scenario [--seed --json]

    add_simulate_parser(sub)
    from app.history_cli import add_history_parsers  # report, replay: the call history

    add_history_parsers(sub)
    from app.campaign_cli import add_campaign_parser  # campaign load: contacts via the API
    from app.desk_cli import add_desk_parsers  # hash-password: PINs and passwords

    add_desk_parsers(sub)
    add_campaign_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
