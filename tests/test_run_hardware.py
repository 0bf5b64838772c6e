"""One hardware truth per run: recorded in run.json, used by eval, energy and sweeps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hamq.cli.main import main
from hamq.experiments.sweep import measure_energy
from hamq.hardware.estimate import estimate_energy
from hamq.hardware.spec import load_hardware
from hamq.hardware.stats import cell_stats
from hamq.quantization import quantized_layers
from hamq.training.run_hardware import recorded_hardware
from hamq.training.runs import load_run


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run trained for 2's complement on 2-bit cells of rram-2b-40nm (not the preset's
    differential pair)."""
    out = tmp_path_factory.mktemp("hwrun") / "r"
    args = ["train", "--out", str(out), "--quiet",
            "--set", "train.float_epochs=1", "--set", "train.qat_epochs=1",
            "--set", "hardware.preset=rram-2b-40nm",
            "--set", "hardware.representation=twos_complement"]  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 0
    return out


def expected_spec() -> dict:
    return load_hardware("rram-2b-40nm", **{"array.representation": "twos_complement"}).model_dump(
        mode="json"
    )


def test_run_json_records_every_field_of_the_resolved_hardware(run_dir: Path) -> None:
    record = json.loads((run_dir / "run.json").read_text())
    assert record["hardware"]["spec"] == expected_spec()
    assert record["hardware"]["spec"]["tech"]["e_cell_pj"] == [0.079, 0.36, 0.73, 1.49]


def test_energy_uses_the_recorded_hardware(run_dir: Path, capsys) -> None:
    code, out, _ = run_cli(["energy", str(run_dir), "--samples", "30", "--json"], capsys)
    assert code == 0
    report = json.loads(out)
    assert report["hardware_spec"] == expected_spec()
    assert "as recorded in" in report["hardware_source"]
    run = load_run(run_dir)
    hw = load_hardware("rram-2b-40nm", **{"array.representation": "twos_complement"})
    direct = estimate_energy(run.model, run.data(), hw, samples=30).to_dict()
    assert report["totals"] == direct["totals"]
    # the bare preset (differential) stores other cells, so E_cb differs
    bare = estimate_energy(run.model, run.data(), "rram-2b-40nm", samples=30).to_dict()
    assert bare["totals"]["e_cb_j"] != pytest.approx(direct["totals"]["e_cb_j"])


def test_hw_and_set_override_and_say_so(run_dir: Path, capsys) -> None:
    code, out, _ = run_cli(["energy", str(run_dir), "--samples", "10", "--hw", "rram-1b"], capsys)
    assert code == 0 and "from --hw (overrides the run's rram-2b-40nm)" in out
    code, out, _ = run_cli(
        ["energy", str(run_dir), "--samples", "10", "--set", "adc.bits=6", "--json"], capsys
    )
    report = json.loads(out)
    assert report["hardware_spec"]["adc"]["bits"] == 6
    assert report["hardware_spec"]["array"]["representation"] == "twos_complement"
    assert "--set adc.bits=6" in report["hardware_source"]
    code, _, err = run_cli(["energy", str(run_dir), "--set", "adc.bitz=6"], capsys)
    assert code == 2 and "adc.bitz" in err and "did you mean 'bits'" in err


def test_eval_counts_cells_on_the_recorded_hardware(run_dir: Path, capsys) -> None:
    code, out, _ = run_cli(["eval", str(run_dir), "--json"], capsys)
    assert code == 0
    result = json.loads(out)
    record = json.loads((run_dir / "run.json").read_text())
    assert result["cells"] == record["cells"]
    # independent count: 2's complement words of 8 bits, 2-bit cells
    run = load_run(run_dir)
    on = sum(
        cell_stats(layer.weight_int(), 8, "twos_complement", 2).cells_on
        for _, layer in quantized_layers(run.model)
    )
    assert result["cells"]["on"] == on
    code, out, _ = run_cli(["eval", str(run_dir), "--json", "--hw", "rram-1b"], capsys)
    other = json.loads(out)
    assert other["cells"]["representation"] == "differential"
    assert other["cells"]["total"] != result["cells"]["total"]


def test_sweep_energy_defaults_to_the_runs_own_hardware(run_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "r"
    shutil.copytree(run_dir, copy)
    own = measure_energy(copy, None, 25)
    assert own is not None and own["_hw_spec"] == expected_spec()
    named = measure_energy(copy, "rram-1b", 25)
    assert named is not None and named["_hw_spec"]["array"]["representation"] == "differential"
    assert named["totals"]["e_cb_j"] != own["totals"]["e_cb_j"]


def test_old_run_without_recorded_hardware_uses_its_config(run_dir: Path) -> None:
    run = load_run(run_dir)
    old = {**run.record, "hardware": {k: v for k, v in run.record["hardware"].items()
                                      if k != "spec"}}  # fmt: skip
    resolved = recorded_hardware(old, run.config, "old/run.json")
    assert "from the run's config" in resolved.source and not resolved.overridden
    assert resolved.spec.model_dump(mode="json") == expected_spec()
