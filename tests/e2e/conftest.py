"""Fixtures shared by the end-to-end tests (real Asterisk 22 sandbox, real SIPp).

A missing component is a FAILURE, not a skip: CI installs everything (scripts/bootstrap),
so a test that would silently skip there would hide a broken install.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from harness.ports import SandboxPorts
from harness.sandbox import REPO_ROOT, chroot_ready, default_chroot, provision, reap_orphans


def _can_run() -> str | None:
    if shutil.which("sipp") is None:
        return "sipp (sip-tester) is not installed"
    if os.geteuid() != 0:
        return "the Asterisk sandbox runs as root (chroot)"
    if not chroot_ready(default_chroot()) and shutil.which("debootstrap") is None:
        return "no sandbox chroot and no debootstrap to build it (run scripts/bootstrap)"
    return None


@pytest.fixture(scope="session")
def chroot() -> Path:
    reason = _can_run()
    if reason:
        pytest.fail(f"end-to-end tests need the real components: {reason}")
    path = provision()
    reap_orphans(path)  # instances left by a test run that was killed
    return path


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """``artifacts/e2e/<test>/<pid>/``: per process, so parallel runs never share files;
    the directories of finished runs are replaced."""
    base: Path = REPO_ROOT / "artifacts" / "e2e" / str(request.node.name)
    if base.is_dir():
        for old in base.iterdir():
            if not (old.name.isdigit() and Path(f"/proc/{old.name}").exists()):
                shutil.rmtree(old, ignore_errors=True)
    path = base / str(os.getpid())
    path.mkdir(parents=True)
    return path


@pytest.fixture
def ports() -> SandboxPorts:
    return SandboxPorts.free()


