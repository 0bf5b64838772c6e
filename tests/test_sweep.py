"""Sweeps: runs, table, CSV, plots, resumption; recipe and sweep files validate."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from hamq.cli.main import main
from hamq.config_base import validate
from hamq.errors import HamqError
from hamq.experiments.report import pareto_front
from hamq.experiments.sweep import (
    SweepConfig,
    load_sweep,
    run_config,
    select_runs,
    sweep_runs,
    variants,
)
from hamq.training.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_two_run_sweep_writes_outputs_and_rerun_skips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = tmp_path / "s.yaml"
    sweep.write_text(
        yaml.safe_dump(
            {
                "base": {"train": {"float_epochs": 2, "qat_epochs": 2}},
                "hamming": [1.0],
                "energy_samples": 5000,  # more than the 360 test images: all are used
            }
        )
    )
    out = tmp_path / "out"
    code, _, err = run(capsys, "sweep", str(sweep), "--out", str(out), "--quiet")
    assert code == 0, err
    for name in ("results.csv", "report.md", "pareto.png", "hw_hist.png"):
        assert (out / name).is_file(), name
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["name"] for r in rows] == ["w8-baseline", "w8-hamming-1"]
    assert all(r["status"] == "ok" for r in rows)
    assert float(rows[0]["cells_on_reduction"]) == 0.0
    assert float(rows[1]["e_cb_j"]) > 0
    assert all(0 < float(r["e_cb_floor_j"]) < float(r["e_cb_j"]) for r in rows)
    report = (out / "report.md").read_text()
    assert "| w8-hamming-1 |" in report and "E_cb&AD" in report
    # The second run started QAT from the baseline's float weights.
    assert (out / "w8-baseline" / "float.safetensors").is_file()
    assert not (out / "w8-hamming-1" / "float.safetensors").exists()
    # Rerun: finished runs are reused (their files are not rewritten).
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*/*.json")}
    mtimes |= {p: p.stat().st_mtime_ns for p in out.glob("*/model.safetensors")}
    assert len(mtimes) == 6  # run.json, energy.json, model.safetensors of each run
    code, _, err = run(capsys, "sweep", str(sweep), "--out", str(out), "--quiet")
    assert code == 0, err
    again = {p: p.stat().st_mtime_ns for p in out.glob("*/*.json")}
    again |= {p: p.stat().st_mtime_ns for p in out.glob("*/model.safetensors")}
    assert again == mtimes
    assert list(csv.DictReader((out / "results.csv").open())) == rows


def test_failed_run_is_recorded_and_others_go_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = tmp_path / "s.yaml"
    sweep.write_text(
        yaml.safe_dump(
            {
                "base": {"train": {"float_epochs": 1, "qat_epochs": 1}},
                "share_float": False,
                "extra": [
                    {
                        "name": "broken",
                        "set": ["train.init_from=/nonexistent/run", "train.float_epochs=0"],
                    },
                    {"name": "fine", "set": ["regularizer.name=l1", "regularizer.lambda=0.01"]},
                ],
                "energy_samples": 20,
            }
        )
    )
    out = tmp_path / "out"
    code, _, err = run(capsys, "sweep", str(sweep), "--out", str(out), "--quiet")
    assert code == 0, err
    rows = {r["name"]: r for r in csv.DictReader((out / "results.csv").open())}
    assert rows["w8-broken"]["status"].startswith("failed")
    assert "init_from" in rows["w8-broken"]["status"]
    assert rows["w8-fine"]["status"] == "ok"
    assert "w8-broken" in (out / "report.md").read_text()


def test_sweep_with_a_typo_fails_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({"base": {"quant": {"w_bit": 4}}}))
    code, _, err = run(capsys, "sweep", str(sweep), "--out", str(tmp_path / "o"))
    assert code == 2 and "did you mean 'w_bits'" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "path", sorted((REPO / "configs" / "recipes").glob("*.yaml")), ids=lambda p: p.name
)
def test_recipe_files_validate(path: Path) -> None:
    cfg = validate(TrainConfig, yaml.safe_load(path.read_text()), source=str(path))
    assert cfg.train.qat_epochs >= 1


@pytest.mark.parametrize(
    "path", sorted((REPO / "configs" / "sweeps").glob("*.yaml")), ids=lambda p: p.name
)
def test_sweep_files_validate(path: Path) -> None:
    sweep = load_sweep(path)
    names = [n for n, _ in variants(sweep)]
    assert len(names) == len(set(names)) and "-baseline" in names[0]
    # Every run of every seed validates as a run config.
    for _, overrides in variants(sweep):
        run_config(sweep, overrides)


def test_share_float_points_runs_at_the_first_run_of_their_seed(tmp_path: Path) -> None:
    sweep = load_sweep(REPO / "configs" / "sweeps" / "kws.yaml")
    assert len(sweep.seeds) > 1
    runs = variants(sweep, tmp_path)
    for seed in sweep.seeds:
        mine = [(n, ov) for n, ov in runs if f"seed={seed}" in ov]
        assert len(mine) == len(runs) // len(sweep.seeds)
        assert not any("init_from" in o for o in mine[0][1])
        first = str(tmp_path / mine[0][0])
        assert all(f"train.init_from={first}" in ov for _, ov in mine[1:])


def test_an_extra_run_keeps_its_own_float_stage(tmp_path: Path) -> None:
    """An extra run that sets train.float_epochs starts from the shared float weights but
    trains its own float stage (a float retrain, e.g. of a pruned network)."""
    sweep = load_sweep(REPO / "configs" / "sweeps" / "twofold-cifar-r20.yaml")
    own = [*sweep.extra[0].set, "train.float_epochs=3"]
    sweep.extra.append(sweep.extra[0].model_copy(update={"name": "retrain", "set": own}))
    runs = dict(variants(sweep, tmp_path))
    first = str(tmp_path / "w8-baseline")
    retrain = run_config(sweep, runs["w8-retrain"]).train
    assert retrain.float_epochs == 3 and retrain.init_from == first
    other = run_config(sweep, runs["w8-hamming-2-kd"]).train
    assert other.float_epochs == 0 and other.init_from == first


def test_float_from_starts_qat_from_another_extra_runs_float_stage(tmp_path: Path) -> None:
    sweep = load_sweep(REPO / "configs" / "sweeps" / "twofold-cifar-r20.yaml")
    src = next(r for r in sweep.extra if r.name == "rows-0.7-kd-ft15")
    sweep.extra.append(sweep.extra[0].model_copy(update={"name": "q", "float_from": src.name}))
    runs = sweep_runs(sweep, tmp_path)
    q = next(r for r in runs if r.name == "w8-q")
    cfg = run_config(sweep, q.overrides).train
    assert cfg.init_from == str(tmp_path / "w8-rows-0.7-kd-ft15") and cfg.float_epochs == 0
    assert "w8-rows-0.7-kd-ft15" in q.needs


def test_teacher_from_names_the_run_whose_float_weights_teach(tmp_path: Path) -> None:
    sweep = load_sweep(REPO / "configs" / "sweeps" / "twofold-cifar-r20.yaml")
    src = next(r for r in sweep.extra if r.name == "rows-0.7-kd-ft15")
    qat_only = [o for o in src.set if not o.startswith(("train.float_epochs", "train.distill_f"))]
    extra = [
        src.model_copy(update={"name": "q", "float_from": src.name, "teacher_from": "baseline",
                               "set": qat_only}),
        src.model_copy(update={"name": "r", "teacher_from": src.name,
                               "set": [*qat_only, "train.float_epochs=2"]}),
    ]  # fmt: skip
    for run in extra:
        sweep.extra.append(run)
    runs = {r.name: r for r in sweep_runs(sweep, tmp_path)}
    q = run_config(sweep, runs["w8-q"].overrides).train
    assert q.teacher == str(tmp_path / "w8-baseline") and q.distill > 0
    assert q.init_from == str(tmp_path / "w8-rows-0.7-kd-ft15")
    r = run_config(sweep, runs["w8-r"].overrides).train
    assert r.teacher == str(tmp_path / "w8-rows-0.7-kd-ft15")
    assert "w8-rows-0.7-kd-ft15" in runs["w8-r"].needs


def test_teacher_from_must_name_baseline_or_an_earlier_float_stage() -> None:
    data = {"extra": [{"name": "hamming-4", "set": ["regularizer.name=hamming"]},
                      {"name": "q", "teacher_from": "hamming-4"}]}  # fmt: skip
    with pytest.raises(ValueError, match="neither 'baseline' nor an extra run"):
        SweepConfig.model_validate(data)


@pytest.mark.parametrize(
    ("float_from", "needle"),
    [("nope", "not an extra run listed before it"), ("hamming-4", "trains no float stage")],
)
def test_float_from_must_name_an_earlier_run_with_a_float_stage(float_from, needle) -> None:
    data = {"extra": [{"name": "hamming-4", "set": ["regularizer.name=hamming"]},
                      {"name": "q", "float_from": float_from}]}  # fmt: skip
    with pytest.raises(ValueError, match=needle):
        SweepConfig.model_validate(data)


def test_pareto_front_against_brute_force() -> None:
    import random

    rng = random.Random(0)
    pts = [(rng.random(), rng.random()) for _ in range(60)]
    front = set(pareto_front(pts))
    for i, (c, a) in enumerate(pts):
        dominated = any(
            (c2 <= c and a2 >= a) and (c2 < c or a2 > a) for j, (c2, a2) in enumerate(pts) if j != i
        )
        assert (i in front) == (not dominated)


def test_missing_sweep_file(tmp_path: Path) -> None:
    with pytest.raises(HamqError, match="does not exist"):
        load_sweep(tmp_path / "none.yaml")


@pytest.mark.parametrize(
    "flags",
    [["--address", "10.0.0.1:6379"], ["--cpus-per-run", "2"], ["--gpus-per-run", "0.5"]],
    ids=lambda f: f[0],
)
def test_ray_options_without_the_ray_backend_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str]
) -> None:
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({"base": {"train": {"float_epochs": 1, "qat_epochs": 1}}}))
    code, _, err = run(capsys, "sweep", str(sweep), "--out", str(tmp_path / "o"), *flags)
    assert code == 2
    expected = f"error: {flags[0]} is only for --backend ray; add --backend ray or drop it"
    assert err.strip() == expected
    assert not (tmp_path / "o").exists()


def test_ray_backend_without_ray_installed_says_how_to_install_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # what a missing package looks like
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({"base": {"train": {"float_epochs": 1, "qat_epochs": 1}}}))
    code, out, err = run(
        capsys, "sweep", str(sweep), "--out", str(tmp_path / "o"), "--backend", "ray"
    )
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("error: --backend ray needs Ray Tune")
    assert err.strip().endswith('install it with: pip install "hamq[ray]"')
    assert not (tmp_path / "o").exists()  # refused before anything was trained


def test_ray_waves_put_each_run_after_the_run_whose_float_weights_it_starts_from(
    tmp_path: Path,
) -> None:
    from hamq.experiments.ray_sweep import waves

    sweep = load_sweep(REPO / "configs" / "sweeps" / "kws.yaml")
    runs = sweep_runs(sweep, tmp_path)
    firsts = [r for r in runs if not any("init_from" in o for o in r.overrides)]
    assert len(firsts) == len(sweep.seeds) > 1
    for r in runs:  # needs: exactly the run named by its init_from override
        named = [o.split("=", 1)[1] for o in r.overrides if o.startswith("train.init_from=")]
        assert [str(tmp_path / n) for n in r.needs] == named
    first, second = waves(runs)
    assert first == firsts and second == [r for r in runs if r not in firsts]
    # A finished first run holds nothing back: what is left goes in one wave.
    assert waves([r for r in runs if r not in firsts]) == [[r for r in runs if r not in firsts]]
    # Without share_float nothing waits.
    alone = sweep_runs(sweep.model_copy(update={"share_float": False}), tmp_path)
    assert waves(alone) == [alone]


def test_an_unreachable_ray_address_is_refused_at_once() -> None:
    import socket
    import time

    from hamq.experiments.ray_sweep import check_reachable

    with socket.socket() as s:  # a port that was free a moment ago: nobody listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.perf_counter()
    with pytest.raises(
        HamqError, match=rf"cannot reach a Ray cluster at --address 127.0.0.1:{port}"
    ):
        check_reachable(f"127.0.0.1:{port}")
    with pytest.raises(HamqError, match="cannot reach"):
        check_reachable("ray://no-port-here")
    assert time.perf_counter() - started < 5  # refused, not retried for minutes as ray.init does


def test_finished_only_reports_finished_runs_and_trains_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = {"train": {"float_epochs": 1, "qat_epochs": 1}}
    both, one = tmp_path / "both.yaml", tmp_path / "one.yaml"
    both.write_text(yaml.safe_dump({"base": base, "hamming": [1.0], "energy_samples": 50}))
    one.write_text(yaml.safe_dump({"base": base, "energy_samples": 50}))
    out = tmp_path / "out"
    code, _, err = run(capsys, "sweep", str(both), "--out", str(out), "--finished-only")
    assert code == 0, err
    assert not list(out.glob("*/run.json"))  # nothing trained
    code, _, err = run(capsys, "sweep", str(one), "--out", str(out), "--quiet")  # the baseline
    assert code == 0, err
    code, table, err = run(capsys, "sweep", str(both), "--out", str(out), "--finished-only")
    assert code == 0, err
    assert not (out / "w8-hamming-1" / "run.json").exists()
    rows = {r["name"]: r for r in csv.DictReader((out / "results.csv").open())}
    assert rows["w8-baseline"]["status"] == "ok" and float(rows["w8-baseline"]["e_cb_j"]) > 0
    assert rows["w8-hamming-1"]["status"] == "not run yet"
    report = (out / "report.md").read_text()
    assert "Not run yet (1; `hamq sweep` again trains them): w8-hamming-1." in report
    assert "Failed runs" not in report and "| w8-hamming-1 | not run yet |" in table


def test_only_selects_matching_runs_and_the_float_stages_they_start_from(
    tmp_path: Path,
) -> None:
    runs = sweep_runs(load_sweep(REPO / "configs" / "sweeps" / "twofold-cifar-r20.yaml"), tmp_path)
    assert select_runs(runs) == {r.name for r in runs}
    # HamQ at 90% starts QAT from the 90% float retrain (pruning alone), which starts
    # from the baseline's float stage
    assert select_runs(runs, ["w8-rows-0.9-hamq-kd-ft15"]) == {
        "w8-rows-0.9-hamq-kd-ft15", "w8-rows-0.9-kd-ft15", "w8-baseline"
    }  # fmt: skip
    every_90 = select_runs(runs, ["w8-rows-0.9-*", "w8-baseline"])
    assert every_90 == {r.name for r in runs if "rows-0.9-" in r.name} | {"w8-baseline"}
    assert len(every_90) == 5
    with pytest.raises(HamqError, match=r"--only 'w8-rows-0\.9-kd-fft15' matches no run.*"
                                        r"did you mean 'w8-rows-0\.9-kd-ft15'"):  # fmt: skip
        select_runs(runs, ["w8-rows-0.9-*", "w8-rows-0.9-kd-fft15"])


def test_only_trains_the_chosen_runs_and_reports_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = tmp_path / "s.yaml"
    base = {"train": {"float_epochs": 1, "qat_epochs": 1}}
    sweep.write_text(yaml.safe_dump({"base": base, "hamming": [1.0, 2.0], "energy_samples": 50}))
    out = tmp_path / "out"
    code, _, err = run(capsys, "sweep", str(sweep), "--out", str(out), "--quiet",
                       "--only", "w8-hamming-2")  # fmt: skip
    assert code == 0, err
    trained = sorted(p.parent.name for p in out.glob("*/run.json"))
    assert trained == ["w8-baseline", "w8-hamming-2"]  # the baseline: its float stage
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["name"], r["status"]) for r in rows] == [
        ("w8-baseline", "ok"), ("w8-hamming-1", "not run yet"), ("w8-hamming-2", "ok")
    ]  # fmt: skip
    assert float(rows[2]["cells_on_reduction"]) > 0  # paired with the baseline
    code, _, err = run(capsys, "sweep", str(sweep), "--out", str(out), "--only", "w8-hamming-3")
    assert code == 2 and "--only 'w8-hamming-3' matches no run" in err
    assert "did you mean 'w8-hamming-2'" in err
    code, _, err = run(capsys, "sweep", str(sweep), "--out", str(out), "--finished-only",
                       "--only", "w8-hamming-1")  # fmt: skip
    assert code == 2 and "takes no --only" in err
    # the other run next: the finished ones are reported, not trained again
    kept = (out / "w8-hamming-2" / "model.safetensors").stat().st_mtime_ns
    code, _, err = run(capsys, "sweep", str(sweep), "--out", str(out), "--quiet",
                       "--only", "W8-HAMMING-1", "--only", "w8-hamming-1")  # fmt: skip
    assert code == 2 and "--only 'W8-HAMMING-1' matches no run" in err  # case-sensitive
    code, _, err = run(capsys, "sweep", str(sweep), "--out", str(out), "--quiet",
                       "--only", "w8-hamming-1")  # fmt: skip
    assert code == 0, err
    assert (out / "w8-hamming-2" / "model.safetensors").stat().st_mtime_ns == kept
    again = list(csv.DictReader((out / "results.csv").open()))
    assert [r["status"] for r in again] == ["ok", "ok", "ok"]
    assert again[2] == rows[2]


def test_a_run_another_process_finished_meanwhile_is_reported(tmp_path: Path) -> None:
    """Two ``--only`` lanes on one folder: the report of the lane that ends later keeps
    the run the other lane finished while it trained (it was unfinished when it began)."""
    from hamq.experiments.sweep import run_sweep, train_and_measure

    base = {"train": {"float_epochs": 1, "qat_epochs": 1}}
    sweep = validate(SweepConfig, {"base": base, "hamming": [1.0, 2.0], "energy_samples": 32})
    out = tmp_path / "out"
    run_sweep(sweep, out, progress=False, only=["w8-baseline"], log=lambda _: None)
    other = next(r for r in sweep_runs(sweep, out) if r.name == "w8-hamming-1")
    assert not other.finished

    def lane_beside(runs, run_one, log):  # trains its runs, and the other lane finishes
        rows = [run_one(r) for r in runs]
        train_and_measure(sweep, other, progress=False)
        return rows

    rows = run_sweep(sweep, out, progress=False, only=["w8-hamming-2"], backend=lane_beside,
                     log=lambda _: None)  # fmt: skip
    assert {r["name"]: r["status"] for r in rows} == {
        "w8-baseline": "ok", "w8-hamming-1": "ok", "w8-hamming-2": "ok"
    }  # fmt: skip
    assert rows[1]["cells_on"] > 0


def test_finished_only_with_the_ray_backend_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({"hamming": [1.0]}))
    code, _, err = run(capsys, "sweep", str(sweep), "--out", str(tmp_path / "o"),
                       "--finished-only", "--backend", "ray")  # fmt: skip
    assert code == 2 and "--finished-only trains nothing" in err


def _retrain_sweep() -> SweepConfig:
    """The quick demo cut to a baseline (1 float + 1 QAT epoch), a 50%-row float retrain
    of 2 epochs and a HamQ run starting QAT from that retrain (``float_from``)."""
    from hamq.experiments.demo import demo_sweep

    quick = demo_sweep(quick=True)
    base = {**quick.base, "train": {**quick.base["train"], "float_epochs": 1, "qat_epochs": 1}}
    rows = ["sparsity.sparsity=0.5", "sparsity.granularity=row", "sparsity.from_float=true"]
    extra = [
        {"name": "r", "set": [*rows, "train.float_epochs=2"]},
        {"name": "q", "float_from": "r", "set": [*rows, "regularizer.name=hamming"]},
    ]
    fields = {"base": base, "l1": [], "hamming": [], "energy_samples": 32, "extra": extra}
    return SweepConfig(**{**quick.model_dump(by_alias=True), **fields})


def test_a_sweep_stopped_inside_a_float_retrain_resumes_to_the_same_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped after the retrain's first float epoch (its dependent run not started), the
    local sweep resumes that retrain and ends with the records of an uninterrupted one."""
    import json

    import torch

    from hamq.experiments.sweep import run_sweep, train_and_measure
    from hamq.training import trainer
    from hamq.training.trainer import train_run

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = Path("out")  # relative: both sweeps record the same paths in their overrides
    try:
        whole, stopped = tmp_path / "whole", tmp_path / "stopped"
        for folder in (whole, stopped):
            folder.mkdir()
        monkeypatch.chdir(whole)
        rows = run_sweep(_retrain_sweep(), out, progress=False, log=lambda s: None)
        monkeypatch.chdir(stopped)
        sweep = _retrain_sweep()
        baseline, retrain, _ = sweep_runs(sweep, out)
        train_and_measure(sweep, baseline, progress=False)
        cfg = run_config(sweep, retrain.overrides)
        assert train_run(cfg, retrain.run_dir, stop_after=1, progress=False) is None
        assert not (retrain.run_dir / "run.json").exists()
        assert not (out / "w8-q").exists()
        epochs: list[int] = []
        train_epoch = trainer.train_epoch

        def counted(state, cfg, data, epoch, device):
            epochs.append(epoch)
            return train_epoch(state, cfg, data, epoch, device)

        monkeypatch.setattr(trainer, "train_epoch", counted)
        resumed = run_sweep(sweep, out, progress=False, log=lambda s: None)
    finally:
        torch.set_num_threads(before)
    assert [r["status"] for r in resumed] == ["ok"] * 3
    assert epochs == [1, 2, 0]  # the retrain's 2nd float epoch and QAT, then q's QAT only
    assert resumed == rows
    for name in ("w8-r", "w8-q"):
        a = json.loads((whole / out / name / "run.json").read_text())
        b = json.loads((stopped / out / name / "run.json").read_text())
        a.pop("timing"), b.pop("timing")
        assert a == b, name
    history = json.loads((stopped / out / "w8-r" / "run.json").read_text())["history"]
    assert [h["stage"] for h in history] == ["float", "float", "qat"]
