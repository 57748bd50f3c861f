"""Reading a roster CSV file for the CLI; the parsing is `ngshare.domain.roster_csv`."""

from __future__ import annotations

from pathlib import Path

from ngshare.client import ClientError
from ngshare.domain.roster_csv import (
    REQUIRED,
    Roster,
    RosterRow,
    RowProblem,
    decode_roster,
    parse_roster,
)
from ngshare.errors import BadRequest

__all__ = ["REQUIRED", "Roster", "RosterRow", "RowProblem", "read_roster"]


def read_roster(path: Path) -> Roster:
    try:
        return parse_roster(decode_roster(path.read_bytes()))
    except FileNotFoundError:
        raise ClientError(f"{path}: no such file") from None
    except BadRequest as exc:
        raise ClientError(f"{path}: {exc.message}") from None
