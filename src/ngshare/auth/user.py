"""The authenticated caller."""

from dataclasses import dataclass


@dataclass(frozen=True)
class User:
    """An authenticated caller. `admin` means admin of every course."""

    name: str
    admin: bool = False
