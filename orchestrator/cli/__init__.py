"""The ``orchestrate`` command line.

Each subcommand lives in its own module ``orchestrator.cli.<name>`` exposing
``register(subparsers)``, which adds its parser and sets ``func`` (called with the parsed
args, returns the exit code). Modules import heavy libraries (torch, ray, mlflow) inside
their handlers so that ``orchestrate --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

from orchestrator import __version__, interrupts
from orchestrator.errors import Aborted, UserError

#: Subcommands in the order ``--help`` lists them.
COMMANDS = (
    "survey",
    "ensemble",
    "ablation",
    "methods",
    "vendor",
    "datasets",
    "evaluate",
    "predict",
    "register",
    "parity",
    "check",
    "choose",
    "report",
    "weights",
    "doctor",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrate",
        description=(
            "Run visual anomaly detection methods (PatchCore, SimpleNet, CS-Flow, DRAEM, "
            "RevDist) on MVTec LOCO AD, MVTec AD or your own LOCO-format parts; track "
            "everything in MLflow."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"orchestrator.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"orchestrator.cli.{name}":
                raise
            p = sub.add_parser(name, help="(not built yet)")
            p.set_defaults(func=_not_built(name))
            continue
        module.register(sub)
    return parser


def _not_built(name: str):
    def run(_args: argparse.Namespace) -> int:
        print(f"orchestrate {name}: not built yet", file=sys.stderr)
        return 2

    return run


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (runs marked KILLED) but exiting 143."""


#: set when SIGTERM arrived (libraries may re-raise it as a plain KeyboardInterrupt)
_terminated: list[int] = []


def _terminate(signum, frame):
    _terminated.append(signum)
    interrupts.received.append(signum)
    raise Terminated()


def _interrupt(signum, frame):
    """Ctrl-C as Python's own handler, recorded (orchestrator.interrupts)."""
    interrupts.received.append(signum)
    raise KeyboardInterrupt()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = previous_int = None
    interrupts.received.clear()
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            previous_int = signal.signal(signal.SIGINT, _interrupt)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Aborted as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        term = isinstance(exc, Terminated) or bool(_terminated)
        _terminated.clear()
        interrupts.received.clear()
        print("terminated" if term else "interrupted", file=sys.stderr)
        return 143 if term else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if previous_int is not None:
            signal.signal(signal.SIGINT, previous_int)


def entry() -> int:
    """The ``orchestrate`` command: :func:`main`, then the process ends. The cyclic garbage
    collector's last pass at interpreter exit over everything torch, Ray and MLflow allocated
    takes about a second and frees nothing anyone reads: it is switched off first (``gc.freeze``;
    files and stores are closed by then, and reference-counted objects are still freed)."""
    import gc

    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    gc.disable()
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(entry())
