"""``hamq presets`` and ``hamq energy``."""

from __future__ import annotations

import json

import click

from hamq.cli.main import cli
from hamq.cli.options import hardware_options
from hamq.errors import HamqError


def _short(source: str, width: int = 90) -> str:
    """The head of a preset's source (presets start it with the citation)."""
    text = " ".join(source.split())
    return text if len(text) <= width else text[: width - 3].rstrip() + "..."


@cli.command()
def presets() -> None:
    """List the shipped hardware presets: name, bits per cell, representation, source."""
    from hamq.hardware.spec import load_hardware, preset_names

    for name in preset_names():
        hw = load_hardware(name)
        click.echo(
            f"{name:<14} {hw.cell_bits} bit/cell  {hw.representation:<16} {_short(hw.source)}"
        )


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@hardware_options
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=None,
    help="Measure on the first N test samples (default: the whole test split).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="Batch size of the measuring forward passes.",
)
@click.option(
    "--static",
    is_flag=True,
    help="No data: assume each input magnitude bit is 1 with probability --activity.",
)
@click.option(
    "--activity",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Input bit activity of --static (default 0.5).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def energy(run_dir: str, hw_name: str | None, hw_sets: tuple[str, ...], samples: int | None,
           batch_size: int, static: bool, activity: float | None,
           as_json: bool) -> None:  # fmt: skip
    """Crossbar energy, cycles and TOPS/W per inference of a trained run, per layer.

    The hardware is the one the run recorded (its preset with the config's overrides);
    --hw and --set replace or change it, and the output says which was used. Data mode
    (default) measures every layer's real quantized inputs on the test split; --static
    assumes an input bit activity instead.
    """
    from hamq.hardware.estimate import DEFAULT_ACTIVITY, estimate_energy, static_energy
    from hamq.training.run_hardware import resolve_hardware
    from hamq.training.runs import load_run

    if static and samples is not None:
        raise HamqError("--samples measures data; it cannot be combined with --static")
    if activity is not None and not static:
        raise HamqError("--activity is the assumed input bit activity of --static; add --static")
    run = load_run(run_dir)
    resolved = resolve_hardware(
        run.record, run.config, f"{run_dir}/run.json", hw_name, list(hw_sets)
    )
    hw = resolved.spec
    if static:
        shape = tuple(run.record["input_shape"])
        act = DEFAULT_ACTIVITY if activity is None else activity
        report = static_energy(run.model, hw, shape, activity=act)
    else:
        report = estimate_energy(run.model, run.data(), hw, samples=samples, batch_size=batch_size)
    if as_json:
        out = {
            **report.to_dict(),
            "hardware_source": resolved.source,
            "hardware_spec": hw.model_dump(mode="json"),
        }
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(f"hardware: {resolved.source}")
        click.echo(report.format_table())
