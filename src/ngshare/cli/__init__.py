"""The `ngshare` command.

Server-side commands (`serve`, `db`, `gc`, `settings`) live in
`ngshare.cli.admin`; course management against a running server (`courses`,
`course`, `instructor`, `student`, `assignments`, `submissions`) lives in
`ngshare.cli.courses`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ngshare import __version__
from ngshare.cli import admin, courses


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ngshare", description="The nbgrader exchange as a JupyterHub service."
    )
    parser.add_argument("--version", action="version", version=f"ngshare {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    admin.register(commands)
    courses.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)
