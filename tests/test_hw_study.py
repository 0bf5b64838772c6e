"""``hamq study``: runs x hardware variants, resumable cells, paired ratios, refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hamq.config_base import validate
from hamq.errors import HamqError
from hamq.experiments.hw_study import (
    StudyConfig,
    Variant,
    measure,
    run_study,
    setting_of,
    summarize,
    write_study,
)
from hostile import refused


def _fake_runs(root: Path, names: list[str]) -> None:
    for n in names:
        (root / "runs" / n).mkdir(parents=True)
        (root / "runs" / n / "run.json").write_text("{}")


def _fake_measure(calls: list[tuple[str, str]]):
    def fn(run_dir: Path, v: Variant, samples: int | None, calib: int | None, subset: str) -> dict:
        calls.append((run_dir.name, v.name))
        seed = int(run_dir.name.rsplit("-s", 1)[1])
        fast = v.name == "fast"
        e = (1.0 if fast else 2.0) * (1 + seed)
        return {
            "run": run_dir.name, "variant": v.name, "seed": seed,
            "crossbar_accuracy": 0.9 - (0.01 if fast else 0.0), "accuracy": 0.9,
            "e_cb_j": e / 2, "e_adc_j": e / 2, "e_cb_ad_j": e, "tops_per_w": 10 / e,
            "cycles": 100.0 if fast else 150.0, "tiles": 4.0, "mapped_cols": 10.0,
            "adc_bits_mean": 4.0,
        }  # fmt: skip

    return fn


def test_every_cell_is_measured_once_and_resumed(tmp_path: Path) -> None:
    _fake_runs(tmp_path, ["w8-base-s0", "w8-base-s1"])
    cfg = StudyConfig(
        runs=["runs/w8-base-s*"],
        variants=[Variant(name="naive", hw="rram-1b"), Variant(name="fast", hw="rram-1b")],
        reference="naive",
    )
    calls: list[tuple[str, str]] = []
    cells = run_study(cfg, tmp_path / "out", tmp_path, lambda s: None, _fake_measure(calls))
    assert len(cells) == 4 and len(calls) == 4
    again = run_study(cfg, tmp_path / "out", tmp_path, lambda s: None, _fake_measure(calls))
    assert len(calls) == 4 and again == cells  # nothing measured twice
    (tmp_path / "out" / "cells" / "w8-base-s1__fast.json").unlink()
    run_study(cfg, tmp_path / "out", tmp_path, lambda s: None, _fake_measure(calls))
    assert calls[-1] == ("w8-base-s1", "fast") and len(calls) == 5
    changed = cfg.model_copy(update={"samples": 10})
    run_study(changed, tmp_path / "out", tmp_path, lambda s: None, _fake_measure(calls))
    assert len(calls) == 9  # measured another way: every cell again
    first = changed.model_copy(update={"subset": "first"})
    run_study(first, tmp_path / "out", tmp_path, lambda s: None, _fake_measure(calls))
    assert len(calls) == 13  # other samples
    keys = [json.loads(p.read_text())["_key"] for p in (tmp_path / "out" / "cells").iterdir()]
    assert all("subset" not in k for k in keys)  # the key cells had before subsets existed
    run_study(first, tmp_path / "out", tmp_path, lambda s: None, _fake_measure(calls))
    assert len(calls) == 13
    summary = summarize(cells, "naive")
    fast = next(e for e in summary if e["variant"] == "fast")
    assert fast["setting"] == "w8-base" and fast["runs"] == 2
    assert fast["tops_per_w_ratio"] == pytest.approx(2.0)  # run by run: 10/e vs 10/(2e)
    assert fast["cycles_ratio"] == pytest.approx(100 / 150)
    assert fast["crossbar_delta_pp"] == pytest.approx(-1.0)
    assert fast["e_cb_ad_j"] == pytest.approx(1.5) and fast["e_cb_ad_j_sd"] == pytest.approx(
        0.7071, rel=1e-3
    )
    path = write_study(cells, cfg, tmp_path / "out", "hamq study s.yaml --out out")
    text = path.read_text()
    assert "| w8-base | fast | 2 |" in text and "2.00x" in text and "-1.00" in text
    assert json.loads((tmp_path / "out" / "study.json").read_text())["summary"] == summary


def test_settings_are_compared_with_the_baseline_seed_by_seed(tmp_path: Path) -> None:
    """E_cb&AD reductions and crossbar-accuracy changes paired by seed, on the same variant
    and against the baseline on the reference variant, with the t-test of the changes."""
    _fake_runs(tmp_path, ["w8-baseline-s0", "w8-baseline-s1", "w8-ham-s0", "w8-ham-s1"])
    cfg = StudyConfig(
        runs=["runs/w8-*"],
        variants=[Variant(name="naive", hw="rram-1b"), Variant(name="fast", hw="rram-1b")],
        reference="naive",
        baseline="w8-baseline",
    )

    def fn(run_dir: Path, v: Variant, samples: int | None, calib: int | None, subset: str) -> dict:
        seed = int(run_dir.name[-1])
        ham = "ham" in run_dir.name
        e = (1.0 if v.name == "fast" else 2.0) * (0.6 if ham else 1.0) * (1 + seed)
        acc = 0.9 - (0.01 * (1 + seed) if ham else 0.0)
        return {"run": run_dir.name, "variant": v.name, "seed": seed, "crossbar_accuracy": acc,
                "accuracy": acc, "e_cb_j": e / 2, "e_adc_j": e / 2, "e_cb_ad_j": e,
                "tops_per_w": 1 / e, "cycles": 1.0, "tiles": 1.0, "mapped_cols": 1.0,
                "adc_bits_mean": 4.0}  # fmt: skip

    cells = run_study(cfg, tmp_path / "out", tmp_path, lambda s: None, fn)
    summary = summarize(cells, "naive", "w8-baseline")
    fast = next(e for e in summary if e["setting"] == "w8-ham" and e["variant"] == "fast")
    v = fast["vs_baseline"]
    assert v["e_cb_ad_reduction"]["mean"] == pytest.approx(0.4)
    assert v["e_cb_ad_reduction_vs_reference"]["mean"] == pytest.approx(0.7)  # 0.6 * 1/2
    assert v["crossbar_delta_pp"]["mean"] == pytest.approx(-1.5)
    assert v["crossbar_delta_p"] == pytest.approx(0.205, abs=1e-3)  # t = -3, 1 dof
    assert all("vs_baseline" not in e for e in summary if e["setting"] == "w8-baseline")
    text = write_study(cells, cfg, tmp_path / "out", "hamq study").read_text()
    assert "| w8-ham | fast | 2 | 40.0% ± 0.0% | 70.0% ± 0.0% | -1.50 ± 0.71 | 0.205 |" in text


def test_setting_of() -> None:
    assert setting_of("w8-hamming-0.5-s2") == "w8-hamming-0.5"
    assert setting_of("naive") == "naive"


def test_bad_study_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(HamqError, match="reference"):
        validate(StudyConfig, {"runs": ["x"], "variants": [{"name": "a", "hw": "rram-1b"}],
                               "reference": "b"}, source="s")  # fmt: skip
    with pytest.raises(HamqError, match="more than once"):
        validate(StudyConfig, {"runs": ["x"], "variants": [{"name": "a", "hw": "rram-1b"}] * 2},
                 source="s")  # fmt: skip
    cfg = StudyConfig(runs=["runs/none-*"], variants=[Variant(name="a", hw="rram-1b")])
    with pytest.raises(HamqError, match="matches no finished run"):
        run_study(cfg, tmp_path / "out", tmp_path, lambda s: None, _fake_measure([]))


def test_real_measurement_on_a_trained_run(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "w8-tiny-s0"
    shutil.copytree(tiny_run, run)
    sets = ["array.skip_empty_columns=true", "adc.policy=full"]
    cell = measure(run, Variant(name="skip", hw="rram-1b", set=sets), 64, None)
    assert cell["crossbar_accuracy"] == pytest.approx(cell["accuracy"], abs=1 / 64)
    assert cell["e_cb_ad_j"] == pytest.approx(cell["e_cb_j"] + cell["e_adc_j"])
    assert cell["hardware_spec"]["array"]["skip_empty_columns"] is True
    assert all(a["policy"] == "full" for a in cell["adc"])


def test_cli_refuses_a_missing_study_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    refused(capsys, ["study", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o")],
            ["nope.yaml"])  # fmt: skip


def test_shipped_studies_load() -> None:
    from hamq.experiments.hw_study import load_study

    root = Path(__file__).resolve().parents[1] / "configs" / "studies"
    files = sorted(root.glob("*.yaml"))
    assert len(files) >= 3
    for f in files:
        cfg = load_study(f)
        # each compares something: hardware variants, or runs against a baseline
        assert cfg.reference is not None, f
        assert len(cfg.variants) >= 2 or cfg.baseline is not None, f
