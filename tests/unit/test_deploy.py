"""The deployment files (deploy/, Dockerfile): parsed and checked without Docker or systemd.

Docker is not available in CI, so the images are not built here (scripts/docker-smoke
builds and runs them: a manual / release check, docs/deployment.md); what can be checked
by reading the files is: compose wiring and healthchecks, the systemd units' keys, the
example config, base-image tags and users, the build context, and the Asterisk
entrypoint's rendering (run with sh on the host against the real templates).
"""

from __future__ import annotations

import configparser
import ipaddress
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from acd.config import StoreBackend, load_config
from harness.sandbox import CONF_DIR, render_template, template_placeholders

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ENTRYPOINT = DEPLOY / "asterisk" / "entrypoint.sh"
GENERATED = ("pjsip_acd.conf", "queues_acd.conf", "extensions_acd.conf")


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _address(service: dict) -> str:
    return str(service["networks"]["acd"]["ipv4_address"])


def _shell_list(name: str) -> set[str]:
    m = re.search(rf'^{name}="([^"]*)"', ENTRYPOINT.read_text(), re.M)
    assert m, f"{name}= not found in {ENTRYPOINT}"
    return set(m.group(1).split())


# --------------------------------------------------------------------------- compose


def test_compose_services_and_healthchecks() -> None:
    services = _compose()["services"]
    assert {"asterisk", "redis", "engine-a", "engine-b", "asterisk-config"} <= set(services)
    for name in ("asterisk", "redis", "engine-a", "engine-b"):
        test = services[name]["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
        assert services[name]["restart"] in ("always", "unless-stopped"), name
    assert "--appendonly yes" in " ".join(services["redis"]["command"])
    assert services["redis"]["image"].split(":")[1] == "7"
    assert services["asterisk"]["build"]["dockerfile"] == "deploy/asterisk/Dockerfile"
    for name in ("engine-a", "engine-b", "asterisk-config"):
        assert services[name]["build"]["dockerfile"] == "Dockerfile"
        assert (DEPLOY / services[name]["build"]["context"] / "Dockerfile").is_file()


def test_compose_bridge_network_no_host_mode() -> None:
    compose = _compose()
    assert compose["networks"]["acd"]["driver"] == "bridge"
    for name, svc in compose["services"].items():
        assert svc.get("network_mode") != "host", name
        assert list(svc["networks"]) == ["acd"], name


def test_compose_engines_are_a_standby_pair() -> None:
    services = _compose()["services"]
    a, b = services["engine-a"], services["engine-b"]
    ids = {_env(a)["ACD_NODE_ID"], _env(b)["ACD_NODE_ID"]}
    assert len(ids) == 2
    for svc in (a, b):
        assert svc["env_file"] == "env/engine.env"
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
        assert svc["depends_on"]["asterisk-config"]["condition"] == \
            "service_completed_successfully"
        script = " ".join(svc["entrypoint"])
        assert "$$ACD_NODE_ID" in script and "acd serve --config /tmp/acd.yaml" in script
        assert "/tmp" in svc["tmpfs"]
        # longer than the engine's drain timeout
        grace = int(svc["stop_grace_period"].rstrip("s"))
        config = load_config(DEPLOY / "acd.example.yaml")
        assert grace > config.engine.drain_timeout
    agi = _env(services["asterisk"])["ACD_AGI_URLS"]
    assert agi == "agi://engine-a:4573&agi://engine-b:4573"


def test_compose_asterisk_env_and_ports() -> None:
    services = _compose()["services"]
    ast = services["asterisk"]
    env = _env(ast)
    assert ast["env_file"] == "env/asterisk.env"  # ACD_AMI_SECRET, ACD_AGI_SECRET
    # every placeholder the entrypoint requires without a default is wired
    assert {"AMI_PERMIT", "ACD_AGI_URLS"} <= set(env)
    assert set(env) <= _shell_list("PLACEHOLDERS")
    # the RTP range is published 1:1
    rtp = f"{env['RTP_START']}-{env['RTP_END']}"
    assert f"{rtp}:{rtp}/udp" in ast["ports"]
    assert f"{env['SIP_PORT']}:{env['SIP_PORT']}/udp" in ast["ports"]
    # AMI only from the engines' fixed addresses
    permit = ipaddress.ip_network(env["AMI_PERMIT"])  # address/netmask
    for name in ("engine-a", "engine-b"):
        assert ipaddress.ip_address(_address(services[name])) in permit, name
    assert ipaddress.ip_address(_address(ast)) not in permit
    # the generated includes: written by the one-shot service, read by Asterisk
    gen = services["asterisk-config"]
    assert "asterisk-generated:/etc/acd/asterisk" in gen["volumes"]
    assert "asterisk-generated:/etc/acd/asterisk:ro" in ast["volumes"]
    assert gen["command"][0] == "asterisk-config" and "/etc/acd/asterisk" in gen["command"]


def _env_names(service: str) -> set[str]:
    path = DEPLOY / "env" / f"{service}.env.example"
    return {line.split("=", 1)[0] for line in path.read_text().splitlines()
            if line and not line.startswith("#")}


def test_env_examples_cover_every_secret_the_config_names() -> None:
    config = load_config(DEPLOY / "acd.example.yaml")
    assert config.api is not None and config.fastagi.secret_env is not None
    engine = {config.asterisk.ami.secret_env, config.fastagi.secret_env,
              config.store.password_env, *(t.env for t in config.api.tokens)}
    assert engine <= _env_names("engine")
    sip = {a.password_env for a in config.agents if a.password_env}
    assert sip and sip <= _env_names("asterisk-config")


def test_each_service_gets_only_its_own_secrets() -> None:
    """The internet-facing Asterisk container holds the AMI and FastAGI secrets only:
    no API token, no Redis password, no agent's SIP password (issue 10.11)."""
    config = load_config(DEPLOY / "acd.example.yaml")
    services = _compose()["services"]
    files = {name: svc["env_file"] for name, svc in services.items()}
    assert files == {"redis": "env/redis.env", "asterisk-config": "env/asterisk-config.env",
                     "asterisk": "env/asterisk.env", "engine-a": "env/engine.env",
                     "engine-b": "env/engine.env"}
    assert _env_names("asterisk") == {config.asterisk.ami.secret_env,
                                      config.fastagi.secret_env}
    assert _env_names("asterisk-config") == {a.password_env for a in config.agents
                                             if a.password_env}
    assert _env_names("redis") == {"REDIS_PASSWORD"}
    assert not _env_names("engine") & (_env_names("asterisk-config") | {"REDIS_PASSWORD"})
    # no secret in a service's plain environment either
    for name, svc in services.items():
        assert not {k for k in _env(svc) if "SECRET" in k or "PASSWORD" in k
                    or "TOKEN" in k}, name
    # the real files stay out of git
    assert "env/*.env" in (DEPLOY / ".gitignore").read_text().split()


def test_compose_hardening() -> None:
    """Every container: no capability, no new privileges; a read-only root except
    Asterisk's (it renders /etc/asterisk at start, writes spool, logs, astdb); Redis as
    its own user with a password that never reaches a command line (issue 10.15, 10.6)."""
    services = _compose()["services"]
    for name, svc in services.items():
        assert svc["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in svc["security_opt"], name
        assert svc.get("privileged") is not True and "cap_add" not in svc, name
        if name != "asterisk":
            assert svc["read_only"] is True, name
            assert "/tmp" in svc.get("tmpfs", []), name
    redis = services["redis"]
    assert redis["user"] == "999:999"
    script = " ".join(redis["command"])
    assert "requirepass" in script and "$$REDIS_PASSWORD" in script
    assert "--requirepass" not in script  # not on redis-server's command line
    assert "/tmp/redis.conf" in script and "umask 077" in script
    assert "REDISCLI_AUTH" in " ".join(redis["healthcheck"]["test"])


def test_compose_doors_name_each_other() -> None:
    """Only Asterisk may open FastAGI, only the engines may log in to AMI, Redis wants a
    password, and the fixed addresses never clash with the dynamic ones."""
    compose = _compose()
    services = compose["services"]
    config = load_config(DEPLOY / "acd.example.yaml")
    asterisk = ipaddress.ip_address(_address(services["asterisk"]))
    assert config.fastagi.allow == [str(asterisk)]
    assert config.fastagi.secret_env == "ACD_AGI_SECRET"
    assert config.store.password_env == "ACD_REDIS_PASSWORD"
    assert "@" not in config.store.url  # no password in the URL
    ipam = compose["networks"]["acd"]["ipam"]["config"][0]
    subnet, dynamic = ipaddress.ip_network(ipam["subnet"]), ipaddress.ip_network(
        ipam["ip_range"])
    fixed = [ipaddress.ip_address(_address(services[n]))
             for n in ("asterisk", "engine-a", "engine-b")]
    assert len(set(fixed)) == 3
    for addr in fixed:
        assert addr in subnet and addr not in dynamic


# --------------------------------------------------------------------------- config


def test_example_config_is_valid_and_production_like() -> None:
    config = load_config(DEPLOY / "acd.example.yaml")
    assert config.api is not None and config.api.host == "0.0.0.0"
    assert config.fastagi.host == "0.0.0.0"
    assert config.store.backend is StoreBackend.REDIS
    assert config.ha is not None
    assert config.sites and config.partners()
    assert config.regions.policies
    # the documented rule: restore_grace ≥ number of AGI URLs × retry pause + 1
    assert config.store.restore_grace >= 2 * config.asterisk.agi_retry_pause + 1


def test_node_config_sets_the_node_id(tmp_path: Path) -> None:
    out = tmp_path / "acd.yaml"
    proc = subprocess.run(
        [sys.executable, str(DEPLOY / "engine" / "node_config.py"),
         str(DEPLOY / "acd.example.yaml"), str(out), "acd-b"],
        capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    config = load_config(out)
    assert config.ha is not None and config.ha.node_id == "acd-b"
    assert config == load_config(DEPLOY / "acd.example.yaml").model_copy(
        update={"ha": config.ha})


def test_node_config_keeps_numbers_as_written(tmp_path: Path) -> None:
    src, out = tmp_path / "src.yaml", tmp_path / "acd.yaml"
    src.write_text("queues: [{id: q, transfer_code: 81}]\ndids: {01065550100: q}\n"
                   "engine: {ring_timeout: 020}\n"
                   "store: {backend: redis}\nha: {node_id: x}\n")
    proc = subprocess.run(
        [sys.executable, str(DEPLOY / "engine" / "node_config.py"), str(src), str(out),
         "acd-b"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    config = load_config(out)
    assert list(config.dids) == ["01065550100"] and config.engine.ring_timeout == 20
    assert config.queue("q").transfer_code == "81"


# --------------------------------------------------------------------------- systemd


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((DEPLOY / "systemd" / name).read_text())
    return parser


@pytest.mark.parametrize(("name", "config"), [
    ("acd.service", "/etc/acd/acd.yaml"),
    ("acd@.service", "/etc/acd/acd-%i.yaml"),
])
def test_systemd_unit(name: str, config: str) -> None:
    unit = _unit(name)
    svc = unit["Service"]
    assert svc["Type"] == "exec"
    assert svc["User"] == "acd"
    assert svc["EnvironmentFile"] == "/etc/acd/engine.env"
    assert svc["ExecStart"] == f"/opt/acd/.venv/bin/acd serve --config {config}"
    assert svc["KillSignal"] == "SIGTERM"
    assert svc["Restart"] == "always"
    assert svc["RestartSec"] == "1"
    drain = load_config(DEPLOY / "acd.example.yaml").engine.drain_timeout
    assert int(svc["TimeoutStopSec"]) > drain
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert svc[key] == "yes", key
    assert svc["ProtectSystem"] == "strict"
    assert "ReadWritePaths" not in svc
    after = unit["Unit"]["After"].split()
    assert "network-online.target" in after and "redis.service" in after
    assert unit["Install"]["WantedBy"] == "multi-user.target"


SYSTEMD_HARDENING = {
    "SystemCallFilter": "@system-service", "SystemCallErrorNumber": "EPERM",
    "ProtectProc": "invisible", "ProcSubset": "pid", "PrivateMounts": "yes",
    "RemoveIPC": "yes", "MemoryDenyWriteExecute": "yes", "NoNewPrivileges": "yes",
}


@pytest.mark.parametrize("name", ["acd.service", "acd@.service"])
def test_systemd_unit_hardening(name: str) -> None:
    text = (DEPLOY / "systemd" / name).read_text()
    svc = _unit(name)["Service"]
    for key, value in SYSTEMD_HARDENING.items():
        assert re.search(rf"^{key}={re.escape(value)}$", text, re.M), key
    assert re.search(r"^SystemCallFilter=~@privileged$", text, re.M)
    assert svc["MemoryMax"].endswith("G") and int(svc["TasksMax"]) > 0
    # systemd's own verdict on the unit, offline (systemd-analyze from scripts/bootstrap)
    proc = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager",
                           str(DEPLOY / "systemd" / name)],
                          capture_output=True, text=True, check=False, timeout=60)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", proc.stdout)
    assert m, proc.stdout[-2000:] + proc.stderr
    assert float(m.group(1)) <= 1.5, m.group(0)


# --------------------------------------------------------------------------- Dockerfiles


def _bases(text: str) -> list[str]:
    """The FROM images, with ${ARG} replaced by the default of a global ARG before it."""
    args: dict[str, str] = {}
    bases = []
    for ln in (ln.strip() for ln in text.splitlines()):
        if m := re.match(r"ARG (\w+)=(\S+)$", ln):
            args.setdefault(m.group(1), m.group(2))
        elif ln.upper().startswith("FROM "):
            ref = ln.split()[1]
            bases.append(re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], ref))
    return bases


@pytest.mark.parametrize("path", ["Dockerfile", "deploy/asterisk/Dockerfile"])
def test_dockerfile_base_tags_and_user(path: str) -> None:
    text = (ROOT / path).read_text()
    lines = [ln.strip() for ln in text.splitlines()]
    bases = _bases(text)
    assert bases
    for base in bases:
        assert ":" in base, f"{path}: FROM {base} has no tag"
        assert not base.endswith(":latest"), f"{path}: FROM {base}"
        # a rolling tag only where the file says why (debian:sid-slim, like the sandbox)
        if base.split(":")[1].startswith("sid"):
            assert "rolling tag" in text
    users = [ln.split()[1] for ln in lines if ln.upper().startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), path
    assert any(ln.startswith("HEALTHCHECK ") for ln in lines), path
    assert any(ln.startswith("ENTRYPOINT ") for ln in lines), path


def test_engine_dockerfile_contents() -> None:
    text = (ROOT / "Dockerfile").read_text()
    for package in ("acd", "routing", "api", "agi_scripts"):
        assert f"COPY {package} ./{package}" in text
    assert "wallboard.html" in text  # the package data is checked at build time
    assert re.search(r"^EXPOSE 4573 8080$", text, re.M)
    assert "COPY --from=build" in text
    assert "curl" not in text.split("HEALTHCHECK", 1)[1].split("\n\n")[0]
    for src in re.findall(r"^COPY (deploy/\S+)", text, re.M):
        assert (ROOT / src).is_file(), src


def test_engine_dockerfile_base_is_the_pinned_python() -> None:
    assert _bases((ROOT / "Dockerfile").read_text()) == ["python:3.11-slim-bookworm"] * 2


def test_asterisk_image_leaves_the_shared_volume_to_the_engine() -> None:
    # Docker copies an image's directory (owner included) into a still-empty named volume
    # at each container create: a root-owned /etc/acd/asterisk in the Asterisk image won
    # whenever compose created asterisk after asterisk-config, which then failed with
    # "Permission denied" writing the includes (found by scripts/docker-smoke).
    text = (DEPLOY / "asterisk" / "Dockerfile").read_text()
    run = " ".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    assert "/etc/acd" not in run
    engine = (ROOT / "Dockerfile").read_text()
    assert "chown acd:acd /etc/acd/asterisk" in engine


def test_dockerignore_admits_what_the_dockerfiles_copy_and_no_secrets() -> None:
    # Allow-list: `*`, then `!path` per thing the Dockerfiles COPY from the context.
    lines = [
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = [ln[1:].rstrip("/") for ln in lines if ln.startswith("!")]

    def admitted(src: str) -> bool:
        src = src.rstrip("/")
        return any(src == a or src.startswith(a + "/") for a in allowed)

    for path in ("Dockerfile", "deploy/asterisk/Dockerfile"):
        text = (ROOT / path).read_text()
        for m in re.finditer(r"^COPY (?!--from)(.+)$", text, re.M):
            for src in m.group(1).split()[:-1]:
                assert admitted(src), f"{path}: COPY {src} is excluded by .dockerignore"
                assert (ROOT / src).exists(), src
    for never in (".venv", "deploy/env/engine.env", "deploy/env", "artifacts", ".git"):
        assert not admitted(never), never


def test_docker_smoke_script() -> None:
    script = ROOT / "scripts" / "docker-smoke"
    text = script.read_text()
    assert os.access(script, os.X_OK)
    assert "set -euo pipefail" in text
    # it builds the way compose does: repo root context, the two Dockerfiles
    assert 'build "$ENGINE_IMAGE" Dockerfile' in text
    assert 'build "$ASTERISK_IMAGE" deploy/asterisk/Dockerfile' in text
    assert "PYTHON_IMAGE=" in text and "DEBIAN_IMAGE=" in text
    assert "core show version" in text and "check-config" in text
    # a manual / release check only: CI does not run it
    ci = (ROOT / ".ci" / "run").read_text() if (ROOT / ".ci" / "run").is_file() else ""
    assert "docker-smoke" not in ci
    assert "docker-smoke" in (ROOT / "docs" / "deployment.md").read_text()


def test_asterisk_dockerfile_matches_the_sandbox() -> None:
    from harness.sandbox import PACKAGES

    text = (DEPLOY / "asterisk" / "Dockerfile").read_text()
    assert _bases(text) == ["debian:sid-slim"]
    assert "--no-install-recommends" in text
    for package in PACKAGES:
        assert re.search(rf"\b{re.escape(package)}\b", text), package
    assert "COPY asterisk_conf/" in text
    assert "deploy/asterisk/entrypoint.sh" in text


def test_engine_healthcheck_script_is_unhealthy_without_a_server(tmp_path: Path) -> None:
    cfg = tmp_path / "acd.yaml"
    cfg.write_text("queues: [{id: q}]\napi: {host: 127.0.0.1, port: 1}\n")
    proc = subprocess.run([sys.executable, str(DEPLOY / "engine" / "healthcheck.py")],
                          env={**os.environ, "ACD_CONFIG": str(cfg)},
                          capture_output=True, text=True, check=False, timeout=30)
    assert proc.returncode == 1 and "unhealthy" in proc.stderr


# --------------------------------------------------------------------------- entrypoint


def test_entrypoint_placeholders_cover_the_templates() -> None:
    placeholders = set(template_placeholders())
    dirs = _shell_list("DIR_PLACEHOLDERS")
    env = _shell_list("PLACEHOLDERS")
    assert dirs == {p for p in placeholders if p.startswith("AST_") and p.endswith("_DIR")}
    assert placeholders - dirs <= env
    assert env <= placeholders  # nothing stale either
    assert not env & dirs


VARS = {
    "AMI_SECRET": r"s&cr|t\x",  # characters special to sed
    "AMI_PERMIT": "172.28.0.0/255.255.0.0",
    "ACD_AGI_URLS": "agi://engine-a:4573&agi://engine-b:4573",
}


def _run_entrypoint(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "ACD_TEMPLATES": str(CONF_DIR), "ACD_GENERATED": str(tmp_path / "gen"),
           "AST_ETC_DIR": str(tmp_path / "etc"), "ACD_GENERATED_WAIT": "0", **extra}
    return subprocess.run(["sh", str(ENTRYPOINT), "render"], env=env, capture_output=True,
                          text=True, check=False, timeout=60)


@pytest.mark.skipif(shutil.which("sh") is None or shutil.which("sed") is None,
                    reason="needs sh and sed")
def test_entrypoint_renders_like_the_harness(tmp_path: Path) -> None:
    (tmp_path / "gen").mkdir()
    for name in GENERATED:
        (tmp_path / "gen" / name).write_text(f"; {name}\n")
    proc = _run_entrypoint(tmp_path, **VARS)
    assert proc.returncode == 0, proc.stderr
    etc = tmp_path / "etc"
    variables = {
        "BIND_ADDR": "0.0.0.0", "AMI_USER": "acd", "AMI_PORT": "5038", "SIP_PORT": "5060",
        "RTP_START": "10000", "RTP_END": "10099", "ACD_RETRIES": "8",
        "ACD_RETRY_PAUSE": "2", "FALLBACK_TIMEOUT": "300", "SERVER_NAME": "main", **VARS,
        "AST_ETC_DIR": str(etc), "AST_DATA_DIR": "/usr/share/asterisk",
        "AST_VAR_DIR": "/var/lib/asterisk", "AST_DB_DIR": "/var/lib/asterisk",
        "AST_SPOOL_DIR": "/var/spool/asterisk", "AST_RUN_DIR": "/var/run/asterisk",
        "AST_LOG_DIR": "/var/log/asterisk", "AST_CACHE_DIR": "/var/cache/asterisk",
    }
    mod_dir = re.search(r"^astmoddir => (.*)$", (etc / "asterisk.conf").read_text(), re.M)
    assert mod_dir and mod_dir.group(1).endswith("/asterisk/modules")
    variables["AST_MOD_DIR"] = mod_dir.group(1)
    for tpl in sorted(CONF_DIR.glob("*.conf")):
        expected = render_template(tpl.read_text(), variables, tpl.name)
        assert (etc / tpl.name).read_text() == expected, tpl.name
    for name in GENERATED:
        assert (etc / name).read_text() == f"; {name}\n"


def test_entrypoint_refuses_missing_values_and_includes(tmp_path: Path) -> None:
    (tmp_path / "gen").mkdir()
    proc = _run_entrypoint(tmp_path, **{**VARS, "ACD_AGI_URLS": ""})
    assert proc.returncode != 0 and "ACD_AGI_URLS is not set" in proc.stderr
    proc = _run_entrypoint(tmp_path, **VARS)
    assert proc.returncode != 0 and "pjsip_acd.conf missing" in proc.stderr
    # AMI_SECRET may come from the engines' variable name
    for name in GENERATED:
        (tmp_path / "gen" / name).write_text("")
    extra = {k: v for k, v in VARS.items() if k != "AMI_SECRET"}
    proc = _run_entrypoint(tmp_path, ACD_AMI_SECRET="from-env", **extra)
    assert proc.returncode == 0, proc.stderr
    assert "secret = from-env" in (tmp_path / "etc" / "manager.conf").read_text()
