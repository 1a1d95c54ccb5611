"""``acd campaign load FILE``: a campaign's contacts (CSV: ``number[,name]``) into the
running engine, through its API (``POST /api/v1/campaigns/{id}/contacts``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any


def add_campaign_parser(sub: Any) -> None:
    p = sub.add_parser("campaign", help="campaigns: load contacts (docs/configuration.md)")
    csub = p.add_subparsers(dest="campaign_command", required=True)
    load = csub.add_parser("load", help="add the contacts of a CSV file to a campaign")
    load.add_argument("file", help="CSV: number[,name] per line (a header is skipped)")
    load.add_argument("--campaign", required=True, help="the campaign id (campaigns[].id)")
    load.add_argument("--api", default="http://127.0.0.1:8080",
                      help="the engine's API (default http://127.0.0.1:8080)")
    load.add_argument("--token-env", default="ACD_API_TOKEN",
                      help="environment variable holding a supervisor or admin token")
    load.set_defaults(func=cmd_campaign_load)


def cmd_campaign_load(args: argparse.Namespace) -> int:
    import httpx

    token = os.environ.get(args.token_env, "")
    if not token:
        print(f"{args.token_env} is not set (a supervisor or admin token)", file=sys.stderr)
        return 2
    text = Path(args.file).read_text(encoding="utf-8")
    url = f"{args.api.rstrip('/')}/api/v1/campaigns/{args.campaign}/contacts"
    r = httpx.post(url, content=text.encode("utf-8"), timeout=30,
                   headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"})
    if r.status_code != 200:
        print(f"{r.status_code}: {r.text}", file=sys.stderr)
        return 1
    print(json.dumps(r.json()))
    return 0
