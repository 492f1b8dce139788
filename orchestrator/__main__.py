"""``python -m orchestrator`` is ``xorch``."""

from orchestrator.cli import main

main()
