"""Up-front reachability checks of the services a command needs (Ray, MLflow): a short,
configurable timeout and one line, instead of a library's silent minutes of retries."""

from __future__ import annotations

import math
import os
import socket

from orchestrator.errors import UserError

#: seconds to wait for a service to answer (``$ORCHESTRATOR_CONNECT_TIMEOUT``)
DEFAULT_CONNECT_TIMEOUT = 10.0


def connect_timeout() -> float:
    """``$ORCHESTRATOR_CONNECT_TIMEOUT`` (seconds, > 0) or :data:`DEFAULT_CONNECT_TIMEOUT`."""
    raw = os.environ.get("ORCHESTRATOR_CONNECT_TIMEOUT")
    if not raw:
        return DEFAULT_CONNECT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise UserError(
            f"ORCHESTRATOR_CONNECT_TIMEOUT must be a number of seconds > 0, got {raw!r}"
        )
    return value


def split_host_port(text: str, what: str) -> tuple[str, int]:
    """``"host:port"`` (``[v6]:port`` too) -> ``(host, port)``; UserError otherwise."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"{what} must look like HOST:PORT, got {text!r}")
    return host, int(port)


def probe_tcp(host: str, port: int, timeout: float) -> str | None:
    """None when something accepts a TCP connection at ``host:port`` within ``timeout``
    seconds, else what went wrong (one phrase)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as exc:
        return exc.strerror or type(exc).__name__
