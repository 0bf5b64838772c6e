"""``python -m hamq`` runs the CLI."""

from hamq.cli.main import main

main()
