"""Bad input gets one line naming the field or file, the value and what is allowed; exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from hamq.cli.main import main

# (id, extra CLI args after `train --out <tmp>`, substrings the error must contain)
TRAIN_CASES = [
    ("w_bits 0", ["--set", "quant.w_bits=0"], ["quant.w_bits", "0", "greater than or equal to 2"]),
    ("w_bits 9", ["--set", "quant.w_bits=9"], ["quant.w_bits", "9", "less than or equal to 8"]),
    ("a_bits 1", ["--set", "quant.a_bits=1"], ["quant.a_bits", "1"]),
    ("negative lambda", ["--set", "regularizer.lambda=-1"], ["regularizer.lambda", "-1"]),
    ("unknown model", ["--set", "model.name=resnet19"], ["model.name", "resnet19", "resnet18"]),
    (
        "unknown representation",
        ["--set", "hardware.representation=twos_complment"],
        ["hardware.representation", "twos_complment", "did you mean 'twos_complement'"],
    ),
    (
        "unknown regularizer",
        ["--set", "regularizer.name=hamming2"],
        ["regularizer.name", "hamming2", "did you mean 'hamming'"],
    ),
    ("misspelled key", ["--set", "quant.wbits=4"], ["quant.wbits", "did you mean 'w_bits'"]),
    ("misspelled section", ["--set", "trian.lr=1"], ["trian", "did you mean 'train'"]),
    ("unknown preset", ["--set", "hardware.preset=rram-3b"], ["rram-3b", "rram-1b"]),
    ("cell bits 3", ["--set", "hardware.cell_bits=3"], ["hardware.cell_bits", "3", "1, 2, 4"]),
    ("optimizer", ["--set", "train.optimizer=rmsprop"], ["train.optimizer", "rmsprop", "sgd"]),
    ("zero lr", ["--set", "train.lr=0"], ["train.lr", "0", "greater than 0"]),
    ("zero qat epochs", ["--set", "train.qat_epochs=0"], ["train.qat_epochs", "0"]),
    ("no equals sign", ["--set", "quant.w_bits"], ["quant.w_bits", "key=value"]),
    ("unknown data set", ["--set", "data.name=mnist"], ["data.name", "mnist", "digits"]),
    (
        "cell bits do not divide",
        [
            "--set",
            "hardware.preset=rram-2b-40nm",
            "--set",
            "hardware.representation=twos_complement",
            "--set",
            "quant.w_bits=7",
        ],
        ["quant.w_bits = 7", "twos_complement", "does not divide"],
    ),
    (
        "energies per level",
        ["--set", "hardware.cell_bits=2"],
        ["rram-1b", "tech.e_cell_pj has 2 entries", "4 levels"],
    ),
    ("skip not a module", ["--set", "quant.skip=[nolayer]"], ["quant.skip", "nolayer"]),
    (
        "missing config",
        ["--config", "/nonexistent/run.yaml"],
        ["/nonexistent/run.yaml", "does not exist"],
    ),
]


def run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    _, err = capsys.readouterr()
    return int(exc.value.code or 0), err


def assert_one_line_error(code: int, err: str, needles: list[str]) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"


@pytest.mark.parametrize(("case", "args", "needles"), TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_train_rejects_bad_input(
    case: str,
    args: list[str],
    needles: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = [
        "train",
        "--out",
        str(tmp_path / "run"),
        "--quiet",
        "--set",
        "train.float_epochs=1",
        "--set",
        "train.qat_epochs=1",
    ]
    code, err = run(capsys, base + args)
    assert_one_line_error(code, err, needles)
    assert not (tmp_path / "run" / "run.json").exists()


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("quant: [1, 2\n", ["not valid YAML"]),
        ("- a\n- b\n", ["must hold a mapping", "list"]),
        ("quant:\n  w_bits: eight\n", ["quant.w_bits", "eight"]),
    ],
    ids=["invalid yaml", "not a mapping", "wrong type"],
)
def test_bad_config_files(
    text: str, needles: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    code, err = run(capsys, ["train", "--config", str(cfg), "--out", str(tmp_path / "r")])
    assert_one_line_error(code, err, [str(cfg), *needles])


def test_eval_missing_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, ["eval", str(tmp_path / "nothing")])
    assert_one_line_error(code, err, ["nothing", "does not exist"])


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "train",
                "--out",
                str(out),
                "--quiet",
                "--set",
                "train.float_epochs=1",
                "--set",
                "train.qat_epochs=1",
            ]
        )
    assert exc.value.code == 0
    return out


@pytest.fixture
def run_copy(trained_run: Path, tmp_path: Path) -> Path:
    """A private copy of the trained run, free to damage."""
    import shutil

    run_dir = tmp_path / "copy"
    shutil.copytree(trained_run, run_dir)
    return run_dir


def test_eval_corrupt_model_file(run_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = run_copy
    (run_dir / "model.safetensors").write_bytes(b"\x00garbage, not a safetensors file")
    code, err = run(capsys, ["eval", str(run_dir)])
    assert_one_line_error(code, err, ["model.safetensors", "corrupt"])


def test_resume_with_other_config(run_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = run_copy
    (run_dir / "run.json").unlink()
    code, err = run(
        capsys,
        [
            "train",
            "--out",
            str(run_dir),
            "--resume",
            "--quiet",
            "--set",
            "train.float_epochs=1",
            "--set",
            "train.qat_epochs=2",
        ],
    )
    assert_one_line_error(code, err, ["checkpoint.safetensors", "another config"])


def test_truncated_checkpoint_on_resume(run_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = run_copy
    (run_dir / "run.json").unlink()
    ck = run_dir / "checkpoint.safetensors"
    ck.write_bytes(ck.read_bytes()[:100])
    code, err = run(
        capsys,
        [
            "train",
            "--out",
            str(run_dir),
            "--resume",
            "--quiet",
            "--set",
            "train.float_epochs=1",
            "--set",
            "train.qat_epochs=1",
        ],
    )
    assert_one_line_error(code, err, ["checkpoint.safetensors", "corrupt"])
