"""Ray Tune backend of ``hamq sweep``: every run of the sweep is one Tune trial.

Each trial calls the same ``train_and_measure`` as the local backend, on the same run
folder ``OUT/<name>``. The run folder's atomic checkpoints are the resume mechanism (Tune's
own checkpoints are not used): a trial restarted after its worker died, or the sweep run
again, continues the run's epochs. Runs already finished, by either backend or by
``hamq train``, are not scheduled at all; their rows are read in this process. Runs that
start from another run's float weights (``share_float``) wait for it: the pending runs go
to Tune in waves, one Tune experiment per wave (``waves``).

Why Tune rather than bare Ray tasks: it keeps the books of the trials (one result or one
error per trial), reserves resources per trial (``cpus_per_run``, ``gpus_per_run``),
restarts a trial whose worker or node died (``max_failures``) and keeps its state under
``storage_path``, here ``OUT/_ray``.

On a cluster of several nodes, OUT must be on a filesystem shared by all nodes at the same
path (NFS, for instance), and the sweep must be started from a folder that exists on every
node: trials change into the driver's working folder so that relative paths in the sweep
(``--out``, ``data.root``, ``train.init_from``) mean the same everywhere (docs/sweeps.md).

Ray is imported only here and only when this backend is used: the local backend needs none.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from hamq.errors import HamqError
from hamq.experiments.sweep import RunOne, SweepRun, record_failure, row_message

INSTALL = 'pip install "hamq[ray]"'
STORAGE_DIR = "_ray"
"""Tune's ``storage_path`` inside the sweep folder."""


def import_ray() -> tuple[ModuleType, ModuleType]:
    """``ray`` and ``ray.tune``, or a one-line error saying how to install them."""
    try:
        import ray
        from ray import tune
    except ImportError as err:
        raise HamqError(
            f"--backend ray needs Ray Tune, which cannot be imported ({err}); "
            f"install it with: {INSTALL}"
        ) from None
    return ray, tune


def waves(runs: list[SweepRun]) -> list[list[SweepRun]]:
    """The runs in waves: a run comes after every run of ``runs`` it ``needs``.

    A needed run that is not in ``runs`` (already finished) does not hold anything back.
    """
    names = {r.name for r in runs}
    done: set[str] = set()
    left, out = list(runs), []
    while left:
        wave = [r for r in left if all(n in done or n not in names for n in r.needs)]
        if not wave:
            cycle = ", ".join(r.name for r in left)
            raise HamqError(f"sweep runs {cycle} start from each other's weights; fix init_from")
        out.append(wave)
        done |= {r.name for r in wave}
        left = [r for r in left if r.name not in done]
    return out


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Refuse a ``host:port`` (or ``ray://host:port``) nobody listens on.

    ``ray.init`` would retry such an address for minutes; ``auto`` and ``local`` pass.
    """
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if address in ("auto", "local"):
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except (OSError, ValueError) as err:
        raise HamqError(
            f"cannot reach a Ray cluster at --address {address} ({err or type(err).__name__}); "
            "give the head node's host:port ('ray start --head' prints it) or leave it out"
        ) from None


@dataclass(frozen=True)
class RayBackend:
    """Schedules a sweep's runs as Ray Tune trials (see the module docstring).

    address: Ray cluster to join, ``host:6379`` of its head node (Ray Client's
        ``ray://host:10001`` is untested); None starts a local Ray for the sweep (or joins
        the one ``RAY_ADDRESS`` names) and stops it after.
        Ray already initialized in this process (tests, notebooks) is used as it is.
    cpus_per_run: CPUs reserved per trial; the trial's torch uses as many threads.
    gpus_per_run: GPUs reserved per trial (fractions share a GPU); 0 runs on CPU.
    max_failures: times a trial whose worker died is restarted (it resumes its run folder).
    """

    address: str | None = None
    cpus_per_run: int = 1
    gpus_per_run: float = 0.0
    max_failures: int = 2

    def __post_init__(self) -> None:
        if not (isinstance(self.cpus_per_run, int) and self.cpus_per_run >= 1):
            raise HamqError(f"--cpus-per-run = {self.cpus_per_run!r}: give a whole number >= 1")
        if not (math.isfinite(self.gpus_per_run) and self.gpus_per_run >= 0):
            raise HamqError(f"--gpus-per-run = {self.gpus_per_run!r}: give a number >= 0")
        if self.max_failures < 0:
            raise HamqError(f"max_failures = {self.max_failures}: give a number >= 0")
        import_ray()  # fail before any training when Ray is missing

    def __call__(
        self, runs: list[SweepRun], run_one: RunOne, log: Callable[[str], None]
    ) -> list[dict[str, Any]]:
        """Rows of ``runs`` in their order; finished runs are read here, the rest trained."""
        rows: dict[str, dict[str, Any]] = {}
        for run in runs:
            if run.finished:
                rows[run.name] = run_one(run)
                log(row_message(rows[run.name], run.run_dir))
        pending = [r for r in runs if not r.finished]
        if pending:
            ray, tune = import_ray()
            started = self._connect(ray)
            try:
                self._check_resources(ray)
                storage = (pending[0].run_dir.parent / STORAGE_DIR).resolve()
                for i, wave in enumerate(waves(pending)):
                    rows |= self._run_wave(tune, wave, run_one, log, storage, i)
            finally:
                if started:
                    ray.shutdown()
        return [rows[r.name] for r in runs]

    def _connect(self, ray: ModuleType) -> bool:
        """Join or start Ray; True when this call started it (and so must stop it)."""
        if ray.is_initialized():
            if self.address is not None:
                raise HamqError(
                    f"address = {self.address!r} but Ray is already initialized in this "
                    "process; leave address unset to use that Ray"
                )
            return False
        if self.address is not None:
            check_reachable(self.address)
        try:
            ray.init(
                address=self.address,
                include_dashboard=False,
                log_to_driver=False,  # trials' output would mix into ours; rows say it all
                logging_level=logging.WARNING,
            )
        except (ConnectionError, RuntimeError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise HamqError(
                f"cannot start or join Ray at address {self.address!r} ({first}); "
                "check --address (a running cluster: 'ray start --head' prints it)"
            ) from None
        return True

    def _check_resources(self, ray: ModuleType) -> None:
        """Refuse a per-run reservation no node can give (Tune would wait for ever)."""
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        if any(
            r.get("CPU", 0) >= self.cpus_per_run and r.get("GPU", 0) >= self.gpus_per_run
            for r in nodes
        ):
            return
        have = ", ".join(f"{r.get('CPU', 0):g} CPU/{r.get('GPU', 0):g} GPU" for r in nodes)
        raise HamqError(
            f"no Ray node has {self.cpus_per_run} CPU(s) and {self.gpus_per_run:g} GPU(s) "
            f"for one run (nodes: {have or 'none'}); lower --cpus-per-run/--gpus-per-run"
        )

    def _run_wave(
        self,
        tune: ModuleType,
        wave: list[SweepRun],
        run_one: RunOne,
        log: Callable[[str], None],
        storage: Path,
        index: int,
    ) -> dict[str, dict[str, Any]]:
        """One Tune experiment over ``wave``; its rows by run name."""
        by_name = {r.name: r for r in wave}
        trainable = tune.with_resources(
            tune.with_parameters(
                _trial, runs=by_name, run_one=run_one, cwd=os.getcwd(), threads=self.cpus_per_run
            ),
            {"cpu": self.cpus_per_run, "gpu": self.gpus_per_run},
        )
        tuner = tune.Tuner(
            trainable,
            param_space={"name": tune.grid_search(list(by_name))},
            # A new worker process per trial costs seconds (it imports torch and hamq); a
            # reused one is what the local backend does for every run: each run seeds its own
            # model and epoch generators, and _trial sets cwd and threads anew.
            tune_config=tune.TuneConfig(reuse_actors=True),
            run_config=tune.RunConfig(
                name=time.strftime("sweep-%Y%m%d-%H%M%S") + f"-{os.getpid()}-wave{index}",
                storage_path=str(storage),
                failure_config=tune.FailureConfig(max_failures=self.max_failures),
                verbose=0,
                callbacks=[_logger(tune, by_name, log)],
            ),
        )
        with _quiet_tune():
            grid = tuner.fit()
        rows: dict[str, dict[str, Any]] = {}
        for result in grid:
            run = by_name[result.config["name"]]
            if "row" in (result.metrics or {}) and result.error is None:
                rows[run.name] = json.loads(result.metrics["row"])
            elif result.error is not None:
                rows[run.name] = _failed_row(run, result.error, self.max_failures)
                log(row_message(rows[run.name], run.run_dir))
        if len(rows) < len(wave):  # Tune stopped trials early: Ctrl-C in this process
            raise KeyboardInterrupt
        return rows


def _trial(
    config: dict[str, Any],
    runs: dict[str, SweepRun],
    run_one: RunOne,
    cwd: str,
    threads: int,
) -> None:
    """One Tune trial: train and measure one run in the driver's working folder."""
    import torch
    from ray import tune

    os.chdir(cwd)  # Tune starts trials in their own folder; the sweep's paths are relative to cwd
    torch.set_num_threads(threads)  # as many threads as CPUs reserved, as Ray's OMP_NUM_THREADS
    row = run_one(runs[config["name"]])
    tune.report({"row": json.dumps(row)})


def _failed_row(run: SweepRun, error: BaseException, max_failures: int) -> dict[str, Any]:
    """The row of a trial that failed for good; Tune's error goes to its ``error.txt``."""
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    what = f"trial failed after {max_failures} restart(s): {type(error).__name__}: {first}"
    record_failure(run.run_dir, f"{what}\n\n{error!s}\n")
    return {"name": run.name, "overrides": " ".join(run.overrides), "status": f"failed: {what}"}


def _logger(tune: ModuleType, runs: dict[str, SweepRun], log: Callable[[str], None]) -> Any:
    """A Tune callback (runs in this process) that logs each run's row as its trial ends."""

    class RowLogger(tune.Callback):  # type: ignore[name-defined,misc]
        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict) -> None:
            if "row" in result:
                run = runs[trial.config["name"]]
                log(row_message(json.loads(result["row"]), run.run_dir))

        def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            name = trial.config["name"]
            log(f"{name}: trial failed (Tune's record: {trial.error_file}); restarted, it "
                f"resumes from {runs[name].run_dir}")  # fmt: skip

        def __reduce__(self) -> tuple[Any, ...]:
            # Tune pickles its callbacks into the experiment state (for Tuner.restore, which
            # hamq does not use: run folders are the state); ``log`` need not be picklable.
            return (object, ())

    return RowLogger()


@contextlib.contextmanager
def _quiet_tune() -> Iterator[None]:
    """No Tune tables or INFO lines on our stdout/stderr (``--json`` prints rows only)."""
    before_env = os.environ.get("RAY_AIR_NEW_OUTPUT")
    # Tune logs INFO lines, and a failed trial's traceback at ERROR from its controller: the
    # rows, the lines logged here and the run's error.txt say the same without tracebacks.
    # On Ctrl-C Tune suggests Tuner.restore, which hamq does not use (rerun the sweep instead).
    levels = {
        "ray.tune": logging.WARNING,
        "ray.tune.execution.tune_controller": logging.CRITICAL,
        "ray.tune.tune": logging.ERROR,
    }
    loggers = {logging.getLogger(name): level for name, level in levels.items()}
    before = {lg: lg.level for lg in loggers}
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"  # the new output engine prints headers at verbose=0
    for lg, level in loggers.items():
        lg.setLevel(level)
    try:
        yield
    finally:
        for lg, level in before.items():
            lg.setLevel(level)
        if before_env is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = before_env
