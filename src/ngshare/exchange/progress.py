"""Progress of large transfers: a tqdm bar on an interactive terminal, and log lines.

The client library reports bytes and finished files through the `Progress`
protocol. A transfer of at least `min_bytes` is logged when it starts, every
few seconds while it runs (bytes and files done), and when it ends, so the
nbgrader log and the JupyterLab server log show it too.
"""

from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

LOG_EVERY = 5.0  # seconds between progress log lines


def human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


class TransferProgress:
    def __init__(self, log: logging.Logger, bar: bool = True, min_bytes: int = 8 << 20) -> None:
        self.log = log
        self.want_bar = bar
        self.min_bytes = min_bytes
        self._bar: tqdm | None = None
        self._reset(0, 0, "")

    def _reset(self, total_bytes: int, total_files: int, label: str) -> None:
        self.total_bytes = total_bytes
        self.total_files = total_files
        self.label = label
        self.done_bytes = 0
        self.done_files = 0
        self.started = time.monotonic()
        self.last_log = self.started

    @property
    def large(self) -> bool:
        return self.total_bytes > 0 and self.total_bytes >= self.min_bytes

    def start(self, total_bytes: int, total_files: int, label: str) -> None:
        self._reset(total_bytes, total_files, label)
        if not self.large:
            return
        self.log.info("%s: %d files, %s", label, total_files, human(total_bytes))
        stream = sys.stderr
        if self.want_bar and hasattr(stream, "isatty") and stream.isatty():
            self._bar = tqdm(
                total=total_bytes,
                desc=label,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=stream,
                leave=False,
                dynamic_ncols=True,
            )
            self._bar.set_postfix_str(f"0/{total_files} files")

    def advance(self, nbytes: int) -> None:
        self.done_bytes += nbytes
        if self._bar is not None:
            self._bar.update(nbytes)
        now = time.monotonic()
        if self.large and now - self.last_log >= LOG_EVERY:
            self.last_log = now
            self.log.info("%s: %s", self.label, self._state())

    def file_done(self, path: str) -> None:
        self.done_files += 1
        if self._bar is not None:
            self._bar.set_postfix_str(f"{self.done_files}/{self.total_files} files")

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.large:
            seconds = max(time.monotonic() - self.started, 1e-6)
            rate = human(self.done_bytes / seconds)
            self.log.info("%s: done, %s in %.1f s (%s/s)", self.label, self._state(), seconds, rate)

    def _state(self) -> str:
        percent = 100 * self.done_bytes / self.total_bytes if self.total_bytes else 100
        return (
            f"{percent:.0f}%, {human(self.done_bytes)} of {human(self.total_bytes)}, "
            f"{self.done_files}/{self.total_files} files"
        )
