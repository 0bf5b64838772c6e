"""Entry point of the ``hamq`` command.

click was chosen over argparse for nested commands, typed options and its exit-code
conventions (usage errors exit 2), and over typer to keep tracebacks and rich formatting
out of the error path: every user error here is one line on stderr and exit code 2, and
Ctrl-C prints the command that continues the work and exits 130.
"""

from __future__ import annotations

import shlex
import sys
import warnings

import click

from hamq.errors import HamqError, one_line


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hamq")
def cli() -> None:
    """hamq: energy-aware quantized training for analog compute-in-memory crossbars."""


def _register_commands() -> None:
    # Each module adds its commands to ``cli``; imported here so ``hamq --help`` lists all.
    from hamq.cli import energy_cmd, study_cmd, train_cmd  # noqa: F401


def _error(message: str) -> None:
    click.echo(f"error: {one_line(message)}", err=True)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    """A warning as one line on stderr (not Python's two lines with the source line)."""
    click.echo(f"warning: {one_line(str(message))}", err=True)


def _usage_error(err: click.ClickException) -> str:
    """click's usage error (normally a usage block plus the error) as one line."""
    text = err.format_message()
    ctx = getattr(err, "ctx", None)
    if ctx is not None:
        text += f" (see '{ctx.command_path} --help')"
    return text


def resume_command(args: list[str]) -> str | None:
    """The command that continues an interrupted ``train``/``sweep``/``demo``, or None."""
    if not args or args[0] not in ("train", "sweep", "demo"):
        return None
    kept: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "--stop-after":  # the continuation trains to the end
            skip = True
            continue
        if a.startswith("--stop-after="):
            continue
        kept.append(a)
    if kept[0] == "train" and "--resume" not in kept:
        kept.insert(1, "--resume")
    return "hamq " + shlex.join(kept)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors print one line and exit with code 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    _register_commands()
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            cli.main(args=args, prog_name="hamq", standalone_mode=False)
    except HamqError as err:
        _error(str(err))
        sys.exit(2)
    except click.ClickException as err:  # usage errors: a bad option, a bad value
        _error(_usage_error(err))
        sys.exit(2)
    except (KeyboardInterrupt, click.exceptions.Abort):  # (click turns Ctrl-C into Abort)
        command = resume_command(args)
        hint = f"; continue with: {command}" if command else ""
        click.echo(f"interrupted{one_line(hint)}", err=True)
        sys.exit(130)
    except OSError as err:  # the file system refused: a full disk, no permission, a bad path
        where = f" '{err.filename}'" if err.filename else ""
        _error(f"cannot access{where}: {err.strerror or err}; check the path and its permissions")
        sys.exit(2)
    sys.exit(0)


if __name__ == "__main__":
    main()
