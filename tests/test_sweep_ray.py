"""``hamq sweep --backend ray``: the Ray Tune backend against the local one.

One local Ray with 2 CPUs serves every test of this module (starting Ray costs ~10 s here).
The reference is the same tiny sweep run by the local backend with torch on one thread, as
each Ray trial runs (``cpus_per_run=1``); both sweeps run from their own folder with the
same relative ``--out``, so even the paths inside overrides and records agree.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

ray = pytest.importorskip(
    "ray", reason='Ray is not installed (pip install "hamq[ray]"): Ray backend tests skipped'
)
pytest.importorskip("ray.tune", reason='Ray Tune is missing (pip install "hamq[ray]")')

from hamq.cli.main import main  # noqa: E402
from hamq.errors import HamqError  # noqa: E402
from hamq.experiments.demo import demo_sweep  # noqa: E402
from hamq.experiments.ray_sweep import STORAGE_DIR, RayBackend  # noqa: E402
from hamq.experiments.sweep import (  # noqa: E402
    SweepConfig,
    SweepRun,
    run_config,
    run_sweep,
    sweep_runs,
    train_and_measure,
)
from hamq.training.trainer import train_run  # noqa: E402

# Trial functions defined here must reach Ray's workers by value: tests/ is not on their path.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

OUT = Path("sweep")  # relative on purpose: trials must run in the driver's folder


def tiny_sweep(**update: Any) -> SweepConfig:
    """The quick demo cut to a baseline and one HamQ run of 1 float + 1 QAT epoch."""
    quick = demo_sweep(quick=True)
    base = {**quick.base, "train": {**quick.base["train"], "float_epochs": 1, "qat_epochs": 1}}
    fields = {"base": base, "l1": [], "hamming": [1.0], "energy_samples": 32, **update}
    return SweepConfig(**{**quick.model_dump(by_alias=True), **fields})


@contextlib.contextmanager
def inside(folder: Path, threads: int | None = None) -> Iterator[None]:
    """Work in ``folder`` (created), optionally with torch on ``threads`` threads."""
    folder.mkdir(parents=True, exist_ok=True)
    cwd, before = Path.cwd(), torch.get_num_threads()
    os.chdir(folder)
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        os.chdir(cwd)
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
        object_store_memory=256 * 2**20,
    )
    try:
        yield
    finally:
        ray.shutdown()


def cli_sweep(folder: Path, *args: str) -> list[dict[str, Any]]:
    """``hamq sweep tiny.yaml --out sweep --json --quiet ARGS`` run in ``folder``; its rows.

    Asserts the command succeeded and printed nothing but the JSON rows on stdout.
    """
    (folder / "tiny.yaml").write_text(yaml.safe_dump(tiny_sweep().model_dump(by_alias=True)))
    capture = io.StringIO()
    with contextlib.redirect_stdout(capture), pytest.raises(SystemExit) as exc:
        main(["sweep", "tiny.yaml", "--out", str(OUT), "--json", "--quiet", *args])
    assert exc.value.code == 0, capture.getvalue()[-2000:]
    return json.loads(capture.getvalue())


@pytest.fixture(scope="module")
def local_result(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """The tiny sweep on the local backend (torch on 1 thread), through the CLI."""
    folder = tmp_path_factory.mktemp("local")
    with inside(folder, threads=1):
        rows = cli_sweep(folder)
    return folder / OUT, rows


@pytest.fixture(scope="module")
def ray_result(
    ray_cluster: None, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[dict[str, Any]]]:
    """The same on the Ray backend, 1 CPU (so 1 torch thread) per trial."""
    folder = tmp_path_factory.mktemp("ray")
    with inside(folder):
        rows = cli_sweep(folder, "--backend", "ray", "--cpus-per-run", "1")
    return folder / OUT, rows


def record(run_dir: Path) -> dict[str, Any]:
    """A run's run.json less its wall time (the one part that may differ)."""
    rec = json.loads((run_dir / "run.json").read_text())
    rec.pop("timing")
    return rec


def test_ray_backend_gives_the_local_backends_runs_and_report(
    local_result: tuple[Path, list[dict[str, Any]]],
    ray_result: tuple[Path, list[dict[str, Any]]],
) -> None:
    local_out, local_rows = local_result
    ray_out, ray_rows = ray_result
    assert [r["name"] for r in ray_rows] == ["w8-baseline", "w8-hamming-1"]
    assert all(r["status"] == "ok" for r in ray_rows), ray_rows
    assert ray_rows == local_rows  # accuracy, ON cells, histograms, energies, reductions
    for name in ("w8-baseline", "w8-hamming-1"):
        assert record(ray_out / name) == record(local_out / name), name
        assert (ray_out / name / "energy.json").read_text() == (
            local_out / name / "energy.json"
        ).read_text()
    # The HamQ run started from the baseline's float weights (so it was scheduled after it).
    assert record(ray_out / "w8-hamming-1")["config"]["train"]["init_from"] == "sweep/w8-baseline"
    report = (
        "results.csv",
        "results.json",
        "report.md",
        "command.txt",
        "pareto.png",
        "hw_hist.png",
    )
    for name in report:
        assert (ray_out / name).read_bytes() == (local_out / name).read_bytes(), name
    # Each run really was a Tune trial: Tune's state, with the trial's row, is in OUT/_ray.
    results = [json.loads(p.read_text()) for p in (ray_out / STORAGE_DIR).glob("*/*/result.json")]
    assert sorted(json.loads(r["row"])["name"] for r in results) == ["w8-baseline", "w8-hamming-1"]


def _stamps(out: Path) -> dict[Path, int]:
    files = [p for p in out.glob("w8-*/*") if p.suffix in (".json", ".safetensors")]
    return {p: p.stat().st_mtime_ns for p in files}


def test_runs_finished_on_either_backend_are_skipped_on_both(
    local_result: tuple[Path, list[dict[str, Any]]],
    ray_result: tuple[Path, list[dict[str, Any]]],
) -> None:
    local_out, local_rows = local_result
    ray_out, ray_rows = ray_result
    before = {**_stamps(local_out), **_stamps(ray_out)}
    ray_experiments = sorted((ray_out / STORAGE_DIR).iterdir())
    # run.json, energy.json, checkpoint, best epoch, model (+ float weights for the
    # baseline), twice:
    assert len(before) == 22
    with inside(local_out.parent):  # Ray over the local backend's runs
        again_ray = run_sweep(tiny_sweep(), OUT, progress=False, log=lambda s: None,
                              backend=RayBackend())  # fmt: skip
    with inside(ray_out.parent, threads=1):  # local over the Ray backend's runs
        again_local = run_sweep(tiny_sweep(), OUT, progress=False, log=lambda s: None)
    assert again_ray == local_rows and again_local == ray_rows
    assert {**_stamps(local_out), **_stamps(ray_out)} == before  # nothing was retrained
    assert not (local_out / STORAGE_DIR).exists()  # no trial was even scheduled
    assert sorted((ray_out / STORAGE_DIR).iterdir()) == ray_experiments


def _worker_deaths(run: SweepRun) -> dict[str, Any]:
    """w8-baseline trains one epoch, then kills its worker, once; w8-doomed kills it always.

    ``os._exit`` is what a kill -9 or a lost node looks like to Tune: no exception, no
    cleanup. After its death the baseline's next attempt runs as the sweep would.
    """
    sweep = tiny_sweep(hamming=[])
    if run.name == "w8-doomed":
        os._exit(3)
    marker = run.run_dir.with_name(f"{run.name}.died")
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        train_run(run_config(sweep, run.overrides), run.run_dir, stop_after=1, progress=False)
        os._exit(1)
    return train_and_measure(sweep, run, progress=False)


def test_killed_trials_resume_or_are_recorded_without_harming_the_others(
    ray_cluster: None,
    tmp_path: Path,
    local_result: tuple[Path, list[dict[str, Any]]],
) -> None:
    local_out, local_rows = local_result
    sweep = tiny_sweep(hamming=[], share_float=False, extra=[{"name": "doomed"}])
    lines: list[str] = []
    with inside(tmp_path):
        runs = sweep_runs(sweep, OUT)
        rows = RayBackend(max_failures=1)(runs, _worker_deaths, lines.append)
        # The baseline's worker died after epoch 0, leaving its checkpoint behind.
        assert (OUT / "w8-baseline.died").is_file()
    baseline, doomed = rows
    # Restarted, the baseline resumed its run folder and equals an uninterrupted run.
    reductions = (
        "accuracy_delta_pp",
        "cells_on_reduction",
        "e_cb_reduction",
        "e_cb_ad_reduction",
        "crossbar_delta_pp",
    )
    assert baseline == {k: v for k, v in local_rows[0].items() if k not in reductions}
    assert record(tmp_path / OUT / "w8-baseline") == record(local_out / "w8-baseline")
    assert [h["epoch"] for h in record(tmp_path / OUT / "w8-baseline")["history"]] == [0, 1]
    # The doomed run, dead twice, is recorded as failed, with the details in its error.txt.
    assert doomed["status"].startswith("failed: trial failed after 1 restart(s)")
    assert "\n" not in doomed["status"]
    error = (tmp_path / OUT / "w8-doomed" / "error.txt").read_text()
    assert "trial failed" in error and len(error.splitlines()) > 1
    assert f"w8-doomed: {doomed['status']}; see {OUT / 'w8-doomed' / 'error.txt'}" in lines
    assert sum("restarted, it resumes" in line for line in lines) == 2  # one per death


def _sleeps(run: SweepRun) -> dict[str, Any]:
    """Says it started, then sleeps far longer than the test waits."""
    run.run_dir.mkdir(parents=True)
    (run.run_dir / "started").touch()
    time.sleep(600)
    return {"name": run.name, "status": "ok", "accuracy": 0.0, "cells_on": 0}


def test_ctrl_c_stops_a_ray_sweep_instead_of_reporting_its_runs_as_failed(
    ray_cluster: None, tmp_path: Path
) -> None:
    runs = [SweepRun("slow", [], tmp_path / "slow")]
    interrupted: list[float] = []

    def interrupt_once_started() -> None:
        # a loaded machine can take minutes to start the trial: wait for it, then time
        # the stop from the Ctrl-C, not from the start
        for _ in range(3000):
            if (tmp_path / "slow" / "started").exists():
                interrupted.append(time.perf_counter())
                os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends to the hamq process
                return
            time.sleep(0.1)

    threading.Thread(target=interrupt_once_started, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        RayBackend()(runs, _sleeps, lambda s: None)
    assert interrupted, "the trial never started"
    assert time.perf_counter() - interrupted[0] < 120  # stopped, not waited for (600 s)
    assert (tmp_path / "slow" / "started").is_file()
    assert not (tmp_path / "slow" / "error.txt").exists()  # not recorded as a failed run


def test_a_run_no_node_can_host_is_refused(ray_cluster: None, tmp_path: Path) -> None:
    runs = [SweepRun("big", [], tmp_path / "big")]
    with pytest.raises(HamqError, match=r"no Ray node has 3 CPU\(s\).*lower --cpus-per-run"):
        RayBackend(cpus_per_run=3)(runs, _worker_deaths, lambda s: None)
    assert not (tmp_path / STORAGE_DIR).exists()


def test_address_with_ray_already_running_is_refused(ray_cluster: None, tmp_path: Path) -> None:
    runs = [SweepRun("r", [], tmp_path / "r")]
    with pytest.raises(HamqError, match="already initialized"):
        RayBackend(address="127.0.0.1:1")(runs, _worker_deaths, lambda s: None)
