"""Write a copy of an ACD config with ``ha.node_id`` set: ``node_config.py SRC DST NODE``.

Lets the engines of a hot-standby pair share one mounted config file (deploy/compose.yaml
passes ``$ACD_NODE_ID``). The copy is validated before the engine starts on it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from acd.config import ConfigError, load_config, read_yaml


def main(argv: list[str]) -> int:
    if len(argv) != 3 or not argv[2]:
        print("usage: node_config.py SRC DST NODE_ID", file=sys.stderr)
        return 2
    src, dst, node = Path(argv[0]), Path(argv[1]), argv[2]
    # read_yaml keeps numbers as written (an unquoted DID 01065550100 is no octal int);
    # the copy quotes them, which reads back the same.
    data = read_yaml(src.read_text(encoding="utf-8"))[0] or {}
    if not isinstance(data.get("ha"), dict):
        print(f"{src}: no ha: section to set node_id in", file=sys.stderr)
        return 2
    data["ha"]["node_id"] = node
    dst.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    try:
        load_config(dst)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
