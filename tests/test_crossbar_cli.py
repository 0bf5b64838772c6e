"""``hamq eval --crossbar`` and ``hamq energy --crossbar`` on a trained run: both accuracies,
the ADC plan kept with the run, each layer's bits in the energy, one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hostile import refused, run_json


def test_eval_crossbar_reports_both_accuracies_and_keeps_the_plan(
    run_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run_json(["eval", str(run_copy), "--crossbar", "--set", "adc.bits=3"], capsys)
    xb = out["crossbar"]
    assert xb["accuracy"] == pytest.approx(out["accuracy"])
    assert 0.0 <= xb["crossbar_accuracy"] <= 1.0 and xb["test_samples"] == 360
    assert xb["calibration"]["split"] == "validation" and xb["calibration"]["samples"] == 180
    names = [layer["name"] for layer in out["layers"]]
    assert [a["name"] for a in xb["adc"]] == names
    assert all(a["bits"] == 3 and a["policy"] == "fixed" for a in xb["adc"])
    assert any(a["range_from"] == "mse" for a in xb["adc"])
    saved = list((run_copy / "crossbar").glob("*.json"))
    assert len(saved) == 1
    kept = json.loads(saved[0].read_text())
    assert kept["adc"] == xb["adc"] and kept["hardware_spec"]["adc"]["bits"] == 3
    pct = run_json(["eval", str(run_copy), "--crossbar", "--set", "adc.bits=3",
                    "--set", "adc.calibration=percentile"], capsys)  # fmt: skip
    assert any(a["range_from"] == "percentile 99.99" for a in pct["crossbar"]["adc"])
    assert len(list((run_copy / "crossbar").glob("*.json"))) == 2  # one file per hardware


def test_full_adc_policy_computes_the_ideal_network(
    run_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Lossless conversions: the crossbar's predictions are the integer network's (up to
    float rounding of the final scale, at most one sample of 360)."""
    out = run_json(["eval", str(run_copy), "--crossbar", "--set", "adc.policy=full"], capsys)
    xb = out["crossbar"]
    assert abs(xb["crossbar_accuracy"] - xb["accuracy"]) <= 1 / 360
    assert all(a["range_from"] == "lossless" and a["bits"] == a["lossless_bits"] for a in xb["adc"])


def test_energy_charges_the_planned_bits(
    run_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sets = ["--set", "adc.policy=optimized", "--set", "adc.tolerance_pp=1"]
    out = run_json(["energy", str(run_copy), "--samples", "100", *sets], capsys)
    plan = {a["name"]: a["bits"] for a in out["crossbar"]["adc"]}
    assert {row["name"]: row["adc_bits"] for row in out["layers"]} == plan
    assert out["crossbar"]["crossbar_accuracy"] >= 0.0
    base = run_json(["energy", str(run_copy), "--samples", "100"], capsys)
    assert "crossbar" not in base
    assert all(row["adc_bits"] == 5 for row in base["layers"])


@pytest.mark.parametrize(
    "extra,needles",
    [
        (["--set", "adc.policy=bogus"], ["adc.policy", "bogus"]),
        (["--set", "adc.bits=0"], ["adc.bits"]),
        (["--set", "adc.percentile=0"], ["adc.percentile"]),
        (["--set", "adc.layers.nope.bits=3"], ["adc.layers", "nope"]),
        (["--set", "array.representation=sign_magnitude"], ["sign_magnitude", "differential"]),
        (["--calibration-samples", "100000"], ["--calibration-samples", "180"]),
    ],
)
def test_bad_crossbar_input_is_one_line(
    tiny_run: Path, capsys: pytest.CaptureFixture[str], extra: list[str], needles: list[str]
) -> None:
    refused(capsys, ["eval", str(tiny_run), "--crossbar", *extra], needles)


def test_calibration_samples_without_crossbar_is_refused(
    tiny_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for cmd in ("eval", "energy"):
        refused(capsys, [cmd, str(tiny_run), "--calibration-samples", "5"], ["--crossbar"])
