"""``hamq study``: trained runs measured on a grid of hardware variants."""

from __future__ import annotations

from pathlib import Path

import click

from hamq.cli.main import cli


@cli.command()
@click.argument("study_file", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Study folder.")
@click.option("--quiet", is_flag=True, help="No line per measurement.")
def study(study_file: str, out: str, quiet: bool) -> None:
    """Measure trained runs on every hardware variant of STUDY_FILE: crossbar and ideal
    accuracy, E_cb, E_adc, E_cb&AD, TOPS/W, cycles, arrays, each against a reference
    variant (docs/crossbar.md). Resumes: measured cells in OUT/cells are kept."""
    from hamq.experiments.hw_study import load_study, run_study, write_study

    cfg = load_study(study_file)
    folder = Path(out)
    log = (lambda s: None) if quiet else (lambda s: click.echo(s, err=True))
    cells = run_study(cfg, folder, Path.cwd(), log=log)
    path = write_study(cells, cfg, folder, f"hamq study {study_file} --out {out}")
    click.echo(path.read_text())
