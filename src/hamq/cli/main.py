"""Entry point of the ``hamq`` command.

click was chosen over argparse for nested commands, typed options and its exit-code
conventions (usage errors exit 2), and over typer to keep tracebacks and rich formatting
out of the error path: every user error here is one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys
import warnings

import click

from hamq.errors import HamqError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hamq")
def cli() -> None:
    """hamq: energy-aware quantized training for analog compute-in-memory crossbars."""


def _register_commands() -> None:
    # Each module adds its commands to ``cli``; imported here so ``hamq --help`` lists all.
    from hamq.cli import energy_cmd, train_cmd  # noqa: F401


def _format_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    line: str | None = None,
) -> str:
    """hamq's own warnings (about the user's input) as one line; others as Python shows them."""
    from hamq.sparsity.layers import LfsrWarning

    if issubclass(category, LfsrWarning):
        return f"warning: {message}\n"
    return _python_format_warning(message, category, filename, lineno, line)


_python_format_warning = warnings.formatwarning


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors print one line and exit with code 2."""
    _register_commands()
    warnings.formatwarning = _format_warning
    try:
        cli.main(args=argv, prog_name="hamq", standalone_mode=False)
    except HamqError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted; rerun with --resume to continue", err=True)
        sys.exit(130)
    sys.exit(0)


if __name__ == "__main__":
    main()
