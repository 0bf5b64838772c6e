"""``hamq eval --noise`` on a trained run, noise-aware training, and the one-line refusals
of bad noise input (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hamq.cli.main import main
from hostile import refused, run_json


def test_eval_noise_over_time(run_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["eval", str(run_copy), "--hw", "pcm-14nm", "--noise", "--t", "1s,1d,1y",
            "--repeats", "3", "--samples", "120"]  # fmt: skip
    out = run_json(args, capsys)
    nz = out["noise"]
    assert [t["label"] for t in nz["times"]] == ["1s", "1d", "1y"]
    assert nz["repeats"] == 3 and nz["test_samples"] == 120 and nz["compensation"]
    for t in nz["times"]:
        accs = t["accuracies"]
        assert len(accs) == 3 and t["mean"] == pytest.approx(sum(accs) / 3)
        sd = float(torch.tensor(accs, dtype=torch.float64).std())
        assert t["sd"] == pytest.approx(sd, abs=1e-12)
    # seeded: the same command gives the same figures
    again = run_json(args, capsys)["noise"]
    assert again["times"] == nz["times"]
    other = run_json([*args, "--noise-seed", "7"], capsys)["noise"]
    assert other["times"] != nz["times"]
    record = json.loads((run_copy / "run.json").read_text())
    kept = record["noise"]["pcm-14nm"]
    assert [t["mean"] for t in kept["times"]] == [t["mean"] for t in other["times"]]
    assert (run_copy / kept["file"]).is_file()
    assert (run_copy / kept["file"]).with_suffix(".png").stat().st_size > 1000
    # the run still loads and evaluates after run.json gained the entry
    plain = run_json(["eval", str(run_copy), "--samples", "120"], capsys)
    assert plain["accuracy"] == out["accuracy"]


def test_noise_table_in_text(run_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["eval", str(run_copy), "--hw", "rram-1b", "--noise", "--t", "0s",
              "--repeats", "2", "--samples", "60"])  # fmt: skip
    out = capsys.readouterr().out
    assert exc.value.code in (0, None)
    assert "noise: rram on rram-1b, 2 programmings" in out
    assert "0s" in out and "vs noiseless (pp)" in out


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--noise", "--t", "-1s"], ["time", "-1s"]),
        (["--noise", "--t", "1fortnight"], ["time", "1fortnight", "unit"]),
        (["--noise", "--repeats", "0"], ["--repeats", "0"]),
        (["--t", "1s"], ["--t", "--noise"]),
        (["--repeats", "3"], ["--repeats", "--noise"]),
        (["--noise", "--hw", "sram-acim"], ["sram-acim", "device section"]),
        (["--noise", "--set", "device.read_noise_scale=-1"], ["read_noise_scale"]),
        (["--noise", "--set", "device.stuck_on_rate=1.5"], ["stuck_on_rate"]),
        (["--noise", "--set", "device.g_levels_us=[1,2,3]"], ["g_levels_us", "3 entries"]),
    ],
)
def test_bad_noise_input_is_refused(
    tiny_run: Path, capsys: pytest.CaptureFixture[str], extra: list[str], needles: list[str]
) -> None:
    args = ["eval", str(tiny_run), *extra]
    if "--hw" not in extra:
        args += ["--hw", "pcm-14nm"] if "device." not in " ".join(extra) else ["--hw", "rram-1b"]
    refused(capsys, args, needles)


def test_noise_aware_training_needs_a_device(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refused(capsys, ["train", "--out", str(tmp_path / "r"), "--quiet",
                     "--set", "hardware.preset=sram-acim", "--set", "analog.noise=true"],
            ["analog.noise", "sram-acim", "device"])  # fmt: skip
    refused(capsys, ["train", "--out", str(tmp_path / "r"), "--quiet",
                     "--set", "analog.scale=-1"], ["analog.scale"])  # fmt: skip


@pytest.mark.parametrize("regularizer", ["hamming", "energy"])
def test_noise_aware_training_with_a_cell_regularizer(
    regularizer: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both named in one config: it trains with the regularizer's term active under the
    noise, and records both."""
    out = tmp_path / "nat"
    args = ["train", "--out", str(out), "--quiet", "--set", "train.float_epochs=1",
            "--set", "train.qat_epochs=1", "--set", "hardware.preset=pcm-14nm",
            "--set", "analog.noise=true", "--set", "analog.clip_sigma=2.5",
            "--set", f"regularizer.name={regularizer}",
            "--set", "regularizer.lambda=0.5"]  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code in (0, None), capsys.readouterr().err
    cfg = (out / "config.yaml").read_text()
    assert "analog:" in cfg and "noise: true" in cfg and f"name: {regularizer}" in cfg
    history = json.loads((out / "run.json").read_text())["history"]
    qat = [h for h in history if h["stage"] == "qat"]
    assert qat and all(h["reg"] > 0 for h in qat)  # the term was in the noisy QAT loss
    from hamq.training.runs import load_run

    run = load_run(out)
    assert run.config.analog.noise and run.config.analog.clip_sigma == 2.5


def test_sweep_reports_the_noisy_accuracy_at_a_chosen_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import csv

    import yaml

    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({
        "base": {"train": {"float_epochs": 1, "qat_epochs": 1}},
        "energy_hw": "pcm-14nm", "energy_samples": 60, "noise_t": "1d", "noise_repeats": 2,
    }))  # fmt: skip
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(sweep), "--out", str(out), "--quiet"])
    assert exc.value.code in (0, None), capsys.readouterr().err
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert rows[0]["noise_t"] == "1d" and 0.0 <= float(rows[0]["noisy_accuracy"]) <= 1.0
    record = json.loads((out / "w8-baseline" / "run.json").read_text())
    kept = record["noise"]["pcm-14nm"]
    assert kept["repeats"] == 2 and kept["times"][0]["mean"] == float(rows[0]["noisy_accuracy"])
    assert "noisy acc. at 1d" in (out / "report.md").read_text()
    files = sorted((out / "w8-baseline" / "noise").glob("*.json"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    with pytest.raises(SystemExit) as exc:  # the rerun reuses the evaluation
        main(["sweep", str(sweep), "--out", str(out), "--quiet"])
    assert files[0].stat().st_mtime_ns == stamp
    # AdaBS: a second evaluation, kept beside the first, and the report says so
    cfg = yaml.safe_load(sweep.read_text())
    sweep.write_text(yaml.safe_dump({**cfg, "noise_adapt_bn": True}))
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(sweep), "--out", str(out), "--quiet"])
    assert exc.value.code in (0, None), capsys.readouterr().err
    assert len(sorted((out / "w8-baseline" / "noise").glob("*.json"))) == 2
    record = json.loads((out / "w8-baseline" / "run.json").read_text())
    adapted = record["noise"]["pcm-14nm+adapt-bn"]
    row = next(csv.DictReader((out / "results.csv").open()))
    assert row["noise_adapt_bn"] == "True"
    assert adapted["times"][0]["mean"] == float(row["noisy_accuracy"])
    assert "AdaBS" in (out / "report.md").read_text()


def test_sweep_with_a_bad_noise_time_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({"noise_t": "-1d"}))
    refused(capsys, ["sweep", str(sweep), "--out", str(tmp_path / "o")], ["noise_t", "-1d"])


def test_a_changed_preset_gets_its_own_run_json_entry(
    run_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["eval", str(run_copy), "--hw", "pcm-14nm", "--noise", "--t", "1s", "--repeats",
            "2", "--samples", "60"]  # fmt: skip
    run_json(base, capsys)
    run_json([*base, "--set", "array.representation=shifted"], capsys)
    keys = sorted(json.loads((run_copy / "run.json").read_text())["noise"])
    assert keys[0] == "pcm-14nm" and keys[1].startswith("pcm-14nm@") and len(keys) == 2
