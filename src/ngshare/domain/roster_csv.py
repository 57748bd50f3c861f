"""Reading a roster CSV: tolerant of column order, extra columns, a BOM and short rows.

The header must name student_id, first_name, last_name and email (any order,
any case); other columns are ignored. Each row is either accepted or reported
as a problem with its line number, so the caller can print a report per row.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field

from ngshare.errors import BadRequest

REQUIRED = ("student_id", "first_name", "last_name", "email")


@dataclass(frozen=True)
class RosterRow:
    row: int  # line number in the file, header = 1
    username: str
    first_name: str
    last_name: str
    email: str

    def as_v1(self) -> dict[str, str]:
        return {
            "username": self.username,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "email": self.email,
        }


@dataclass(frozen=True)
class RowProblem:
    row: int
    username: str
    problem: str


@dataclass
class Roster:
    rows: list[RosterRow] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)


def decode_roster(data: bytes) -> str:
    """UTF-8 text without a BOM; 400 otherwise."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRequest("not UTF-8 text") from None


def parse_roster(text: str) -> Roster:
    """Parse CSV text; 400 `the header lacks the column(s) ...` for an unusable header."""
    reader = csv.reader(text.removeprefix("\ufeff").splitlines())
    header = [name.strip().lower() for name in next(reader, [])]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise BadRequest(f"the header lacks the column(s) {', '.join(missing)}")
    where = {name: header.index(name) for name in REQUIRED}
    roster = Roster()
    seen: dict[str, int] = {}
    for number, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        values = {name: cells[i].strip() if i < len(cells) else "" for name, i in where.items()}
        username = values["student_id"]
        if not username:
            roster.problems.append(RowProblem(number, "", "empty student_id; row skipped"))
        elif len(cells) < len(header):
            roster.problems.append(RowProblem(number, username, "row has too few columns; skipped"))
        elif username in seen:
            roster.problems.append(
                RowProblem(number, username, f"duplicate of row {seen[username]}; skipped")
            )
        else:
            seen[username] = number
            roster.rows.append(
                RosterRow(
                    number, username, values["first_name"], values["last_name"], values["email"]
                )
            )
    return roster
