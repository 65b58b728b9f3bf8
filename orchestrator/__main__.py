import sys

from orchestrator.cli import entry

sys.exit(entry())
