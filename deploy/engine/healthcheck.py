"""Container health check of the ACD engine (the engine image's HEALTHCHECK).

With an ``api:`` section: ``GET /healthz`` on the API port (process alive; a passive
standby is healthy too — ``/readyz`` tells which engine takes calls), over HTTPS when
``api.tls_cert`` is set (the certificate is not checked: this is the engine's own port on
its own host). Without one: a TCP connect to the FastAGI port. The config is
``$ACD_CONFIG`` (default /etc/acd/acd.yaml).
Standard library plus PyYAML only: no curl in the slim image. Exit 0 healthy, 1 not.
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
import urllib.request
from typing import Any

import yaml


def _local(host: object) -> str:
    return "127.0.0.1" if host in (None, "", "0.0.0.0", "::") else str(host)


def main() -> int:
    path = os.environ.get("ACD_CONFIG", "/etc/acd/acd.yaml")
    try:
        with open(path, encoding="utf-8") as fh:
            data: Any = yaml.safe_load(fh) or {}
        api = data.get("api")
        if isinstance(api, dict):
            host = _local(api.get("host", "127.0.0.1"))
            tls = bool(api.get("tls_cert"))
            url = f"{'https' if tls else 'http'}://{host}:{int(api.get('port', 8080))}/healthz"
            context = ssl._create_unverified_context() if tls else None
            with urllib.request.urlopen(url, timeout=3, context=context) as resp:
                return 0 if resp.status == 200 else 1
        agi = data.get("fastagi") or {}
        with socket.create_connection(
                (_local(agi.get("host", "127.0.0.1")), int(agi.get("port", 4573))), timeout=3):
            return 0
    except Exception as exc:  # any failure is "unhealthy", with the reason for docker inspect
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
