"""``hamq train``, ``hamq eval``, ``hamq demo``, ``hamq sweep``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hamq.cli.main import cli
from hamq.cli.options import check_crossbar_options, crossbar_options, hardware_options
from hamq.errors import HamqError

if TYPE_CHECKING:
    from hamq.experiments.sweep import Backend, SweepConfig


@cli.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML run config.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config field, e.g. --set regularizer.lambda=0.5 (repeatable).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run in --out from its checkpoint (with no --config and no --set: "
    "with the config the run stored in --out).",
)
@click.option(
    "--stop-after",
    type=click.IntRange(min=1),
    default=None,
    metavar="EPOCHS",
    help="Train at most this many epochs now, then stop (continue with --resume).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run record as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(
    config_path: str | None,
    out: str,
    overrides: tuple[str, ...],
    resume: bool,
    stop_after: int | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Train a quantized model (float pre-training, then QAT with the regularizer).

    Without --config it trains the default model on the embedded digits data set, except
    with --resume and no --set, which continues the run in --out with its stored config.
    """
    from hamq.training.config import load_config
    from hamq.training.trainer import CONFIG, train_run

    stored = Path(out) / CONFIG
    if resume and config_path is None and not overrides and stored.is_file():
        config_path = str(stored)
    cfg = load_config(config_path, list(overrides))
    record = train_run(cfg, Path(out), resume=resume, stop_after=stop_after, progress=not quiet)
    if record is None:
        click.echo(
            f"stopped after {stop_after} epoch(s); continue with: hamq train --resume --out {out}"
            + (f" --config {config_path}" if config_path else "")
            + "".join(f" --set {o}" for o in overrides),
            err=True,
        )
        return
    if as_json:
        click.echo(json.dumps(record, indent=2))
    else:
        c = record["cells"]
        click.echo(
            f"{out}: accuracy {100 * record['accuracy']:.2f}%, ON cells {c['on']} of "
            f"{c['total']} ({100 * c['on_fraction']:.1f}%)"
        )


@cli.command("eval")
@click.argument("run_dir", type=click.Path())
@click.option("--samples", type=click.IntRange(min=1), default=None, help="Test samples to use.")
@hardware_options
@crossbar_options
@click.option(
    "--noise",
    is_flag=True,
    help="Accuracy on noisy, drifting arrays (the hardware's device section) at "
    "each --t, mean ± sd over --repeats programmings; implies --crossbar.",
)
@click.option(
    "--t",
    "times",
    default=None,
    metavar="TIMES",
    help="Times after programming, comma-separated with units s/m/h/d/w/y "
    "(default 1s,1h,1d,1y); needs --noise.",
)
@click.option(
    "--repeats",
    type=int,
    default=None,
    help="Programmings to average over (default 10); needs --noise.",
)
@click.option(
    "--noise-seed",
    type=click.IntRange(min=0),
    default=None,
    help="Seed of the first programming (default: the run's seed); needs --noise.",
)
@click.option(
    "--adapt-bn",
    is_flag=True,
    help="At each time, re-estimate the BatchNorm statistics on the calibration split "
    "through the noisy arrays, then test on a fresh read (AdaBS, Joshi et al. 2020); needs "
    "--noise.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def eval_cmd(
    run_dir: str,
    samples: int | None,
    hw_name: str | None,
    hw_sets: tuple[str, ...],
    crossbar: bool,
    calibration_samples: int | None,
    noise: bool,
    times: str | None,
    repeats: int | None,
    noise_seed: int | None,
    adapt_bn: bool,
    as_json: bool,
) -> None:
    """Evaluate a trained run: test accuracy and exact ON cells of the stored weights, on
    the hardware the run recorded (or --hw / --set, and the output says so).

    --crossbar also computes every layer on its crossbars, bit by bit through each
    layer's ADC (adc.policy), and reports that accuracy beside the ideal one; the ADC
    plan is calibrated on the validation split (never the test split) and kept in
    RUN/crossbar/.

    --noise programs every cell of the arrays --repeats times with the device model of
    the hardware (PCM: programming noise, drift, 1/f read noise and drift compensation
    per layer, or per column with --set device.compensation_scope=column, as aihwkit's
    PCMLikeNoiseModel; RRAM: lognormal variation and stuck cells) and reads them at each
    --t; the table, a plot and the JSON go to RUN/noise/, the summary into run.json.
    --adapt-bn re-estimates the BatchNorm statistics through the noisy arrays at each
    time, then reads them again for the test pass (a digital per-channel correction a
    chip can make with calibration inputs; docs/noise.md)."""
    from hamq.training.record import model_cells
    from hamq.training.run_hardware import resolve_hardware
    from hamq.training.runs import load_run
    from hamq.training.trainer import evaluate

    run = load_run(run_dir)
    resolved = resolve_hardware(
        run.record, run.config, f"{run_dir}/run.json", hw_name, list(hw_sets)
    )
    time_list = _noise_options(noise, times, repeats, noise_seed)
    if adapt_bn and not noise:
        raise HamqError("--adapt-bn re-estimates BatchNorm under noise; add --noise")
    check_crossbar_options(crossbar or noise, calibration_samples)
    if noise:
        from hamq.training.noise_eval import check_noise_hardware

        check_noise_hardware(resolved.spec)
    batch = run.config.data.eval_batch_size
    acc = evaluate(run.model, run.data(), batch, samples)
    result: dict[str, Any] = {
        "run": str(run_dir),
        "accuracy": acc,
        "hardware_source": resolved.source,
        **model_cells(run.model, resolved.spec),
    }
    if crossbar:
        from hamq.training.crossbar_eval import crossbar_evaluation, save_crossbar_result

        xb = crossbar_evaluation(run.model, run.data(), resolved.spec, batch, samples,
                                 calibration_samples)  # fmt: skip
        save_crossbar_result(run_dir, xb, resolved.spec)
        result["crossbar"] = xb
    if noise:
        from hamq.training.noise_eval import noise_evaluation, save_noise_result

        nz = noise_evaluation(run.model, run.data(), resolved.spec, time_list,
                              10 if repeats is None else repeats,
                              run.config.seed if noise_seed is None else noise_seed,
                              batch, samples, calibration_samples, adapt_bn)  # fmt: skip
        result["noise"] = nz
        result["noise_file"] = str(save_noise_result(run_dir, nz, resolved.spec))
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        c = result["cells"]
        click.echo(f"hardware: {resolved.source}")
        click.echo(f"accuracy {100 * acc:.2f}%  ON cells {c['on']} / {c['total']}")
        if crossbar:
            _echo_crossbar(result["crossbar"])
        if noise:
            from hamq.training.noise_eval import format_noise

            for line in format_noise(result["noise"]):
                click.echo(line)
            from hamq.training.noise_eval import record_key

            click.echo(f"  (written to {result['noise_file']} and its .png; run.json "
                       f"noise.{record_key(resolved.spec, adapt_bn)})")  # fmt: skip
        for layer in result["layers"]:
            click.echo(f"  {layer['name']:<24} {layer['cells_on']:>9} / {layer['cells_total']}")


def _noise_options(
    noise: bool, times: str | None, repeats: int | None, seed: int | None
) -> list[float]:
    """The times of --noise in seconds; refuses --t/--repeats/--noise-seed without it."""
    from hamq.hardware.noise import parse_times
    from hamq.training.noise_eval import DEFAULT_TIMES_S, MAX_REPEATS

    if not noise:
        given = [n for n, v in (("--t", times), ("--repeats", repeats),
                                ("--noise-seed", seed)) if v is not None]  # fmt: skip
        if given:
            raise HamqError(f"{', '.join(given)} set the noisy evaluation; add --noise")
        return []
    if repeats is not None and not 1 <= repeats <= MAX_REPEATS:
        raise HamqError(f"--repeats = {repeats}: must be in 1 .. {MAX_REPEATS}")
    return list(DEFAULT_TIMES_S) if times is None else parse_times(times)


def _echo_crossbar(xb: dict[str, Any]) -> None:
    from hamq.training.crossbar_eval import format_adc_plan

    cal = xb["calibration"]
    click.echo(
        f"crossbar accuracy {100 * xb['crossbar_accuracy']:.2f}% (ideal "
        f"{100 * xb['accuracy']:.2f}%, {xb['test_samples']} test samples; ADC ranges "
        f"calibrated on {cal['samples']} {cal['split']} samples)"
    )
    for line in format_adc_plan(xb["adc"]):
        click.echo(line)


@cli.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for the demo's runs (default runs/demo).",
)
@click.option("--quick", is_flag=True, help="Fewer epochs and lambdas (a smoke test).")
@click.option("--json", "as_json", is_flag=True, help="Print the result rows as JSON.")
def demo(out: str | None, quick: bool, as_json: bool) -> None:
    """Baseline vs L1 vs HamQ on the embedded digits data set, in one table."""
    from hamq.experiments.demo import default_out, demo_sweep

    folder = Path(out) if out else default_out()
    command = "hamq demo" + (" --quick" if quick else "")
    _sweep_and_report(demo_sweep(quick), folder, "hamq demo (digits)", command, as_json, False)


@cli.command()
@click.argument("sweep_file", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Sweep folder.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a field of the sweep's base run config (repeatable).",
)
@click.option(
    "--backend",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: one run after the other here; ray: one Ray Tune trial per run "
    '(pip install "hamq[ray]").',
)
@click.option(
    "--address",
    default=None,
    metavar="ADDR",
    help="Ray cluster to join (--backend ray); default: start a local Ray for the sweep.",
)
@click.option(
    "--cpus-per-run",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="CPUs (and torch threads) per run with --backend ray [default: 1].",
)
@click.option(
    "--gpus-per-run",
    type=click.FloatRange(min=0),
    default=None,
    metavar="G",
    help="GPUs per run with --backend ray, fractions allowed [default: 0].",
)
@click.option(
    "--finished-only",
    is_flag=True,
    help="Train nothing: report the runs already finished (the others are listed as not "
    "run yet), e.g. while the sweep trains in another process.",
)
@click.option(
    "--only",
    multiple=True,
    metavar="PATTERN",
    help="Train only the runs whose name matches this glob (repeatable, e.g. "
    "'w8-rows-0.9-*'), and the runs they start from; the report lists the others as "
    "with --finished-only.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result rows as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def sweep(
    sweep_file: str,
    out: str,
    overrides: tuple[str, ...],
    backend: str,
    address: str | None,
    cpus_per_run: int | None,
    gpus_per_run: float | None,
    finished_only: bool,
    only: tuple[str, ...],
    as_json: bool,
    quiet: bool,
) -> None:
    """Baseline, L1 and HamQ over a lambda grid (and bit widths): runs, table, plots.

    Finished runs are reused, so an interrupted sweep continues where it stopped; a failed
    run is recorded and the others go on. With --backend ray every run is a Ray Tune trial
    (same run folders, so either backend reuses the other's finished runs; docs/sweeps.md).
    """
    import sys

    from hamq.experiments.sweep import load_sweep

    if finished_only and backend != "local":
        raise HamqError("--finished-only trains nothing, so it takes no --backend ray; drop one")
    runner = _backend(backend, address, cpus_per_run, gpus_per_run)
    cfg = load_sweep(Path(sweep_file), list(overrides))
    command = "hamq " + " ".join(sys.argv[1:]) if sys.argv[1:] else f"hamq sweep {sweep_file}"
    title = f"Sweep {Path(sweep_file).stem}"
    _sweep_and_report(cfg, Path(out), title, command, as_json, quiet, runner, finished_only,
                      only)  # fmt: skip


def _backend(
    name: str, address: str | None, cpus_per_run: int | None, gpus_per_run: float | None
) -> Backend | None:
    """The sweep backend chosen on the command line (None: the local one)."""
    ray_only = {
        "--address": address,
        "--cpus-per-run": cpus_per_run,
        "--gpus-per-run": gpus_per_run,
    }
    given = [flag for flag, value in ray_only.items() if value is not None]
    if name == "local":
        if given:
            one = len(given) == 1
            raise HamqError(
                f"{', '.join(given)} {'is' if one else 'are'} only for --backend ray; "
                f"add --backend ray or drop {'it' if one else 'them'}"
            )
        return None
    from hamq.experiments.ray_sweep import RayBackend

    return RayBackend(
        address=address,
        cpus_per_run=1 if cpus_per_run is None else cpus_per_run,
        gpus_per_run=0.0 if gpus_per_run is None else gpus_per_run,
    )


def _sweep_and_report(
    cfg: SweepConfig,
    folder: Path,
    title: str,
    command: str,
    as_json: bool,
    quiet: bool,
    backend: Backend | None = None,
    finished_only: bool = False,
    only: tuple[str, ...] = (),
) -> None:
    """Run a sweep, write its report, print the table (or the rows as JSON)."""
    from hamq.experiments.report import write_report
    from hamq.experiments.sweep import format_table, run_sweep

    log = (lambda s: None) if as_json else (lambda s: click.echo(s, err=True))
    rows = run_sweep(cfg, folder, progress=not (quiet or as_json), log=log, backend=backend,
                     finished_only=finished_only, only=only)  # fmt: skip
    report = write_report(rows, folder, title, command)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        click.echo(format_table(rows))
        click.echo(f"\nreport: {report}")


@cli.command()
@click.argument("sweep_dir", type=click.Path(file_okay=False))
@click.option("--title", default=None, help="Report title.")
def report(sweep_dir: str, title: str | None) -> None:
    """Re-render a sweep's report.md and plots from its results.csv and run folders (no
    training)."""
    from hamq.experiments.report import rerender

    click.echo(f"report: {rerender(Path(sweep_dir), title)}")
