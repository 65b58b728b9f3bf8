"""Ctrl-C and SIGTERM as the CLI received them.

Python raises KeyboardInterrupt wherever the main thread happens to be; when that is a
finalizer (a weakref callback, ``__del__``) the exception is printed and dropped. The CLI's
handlers also record the signal here, so code with safe points (the in-process trial runner,
between trials) can stop on an interrupt that was swallowed.
"""

from __future__ import annotations

#: signals received during the current command (SIGINT, SIGTERM numbers)
received: list[int] = []


def check() -> None:
    """Raise KeyboardInterrupt when a signal was received (and perhaps swallowed)."""
    if received:
        raise KeyboardInterrupt()
