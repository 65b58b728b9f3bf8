"""A compact progress display of trials: running / done / failed, elapsed, estimate."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _fmt(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    """Counts trials and prints one status line: updated in place on a terminal, plain
    lines (one per event) otherwise. ``total`` is the number of trials to run."""

    def __init__(self, total: int, stream: TextIO | None = None, label: str = "trials") -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.label = label
        self.running: set[str] = set()
        self.done = 0
        self.failed = 0
        self.retried = 0
        self.start = time.monotonic()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __getstate__(self) -> dict:  # Tune pickles its callbacks; streams don't pickle
        state = dict(self.__dict__)
        state["stream"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.stream = sys.stderr

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        finished = self.done + self.failed
        eta = "--:--"
        if finished:
            eta = _fmt(elapsed / finished * (self.total - finished))
        retry = f" retried {self.retried}" if self.retried else ""
        return (
            f"[{self.label}] {finished}/{self.total} | running {len(self.running)} | "
            f"done {self.done} | failed {self.failed}{retry} | elapsed {_fmt(elapsed)} | "
            f"eta {eta}"
        )

    def _emit(self, event: str = "") -> None:
        if self.tty:
            self.stream.write("\r\033[K" + self.line() + (f"  {event}" if event else ""))
        else:
            self.stream.write(self.line() + (f"  {event}" if event else "") + "\n")
        self.stream.flush()

    def started(self, name: str) -> None:
        self.running.add(name)
        self._emit(f"started {name}")

    def finished(self, name: str) -> None:
        self.running.discard(name)
        self.done += 1
        self._emit(f"done {name}")

    def errored(self, name: str, final: bool) -> None:
        self.running.discard(name)
        if final:
            self.failed += 1
            self._emit(f"FAILED {name}")
        else:
            self.retried += 1
            self._emit(f"retrying {name}")

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
