"""LFSR pruning in a real run: the phases, what the run stores, rebuilding on load and on
resume, and the bad input of the ``sparsity`` section (one-line errors, exit 2)."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import warnings
from pathlib import Path

import pytest
import yaml
from safetensors import safe_open
from safetensors.torch import save_file

from hamq.cli.main import main
from hamq.sparsity.layers import LfsrWarning, check_config
from hamq.sparsity.masks import lfsr_mask
from hamq.training.config import TrainConfig, load_config
from hamq.training.trainer import train_run

TINY = [
    "train.float_epochs=1",
    "train.qat_epochs=3",
    "sparsity.sparsity=0.5",
    "sparsity.lambda=0.5",
    "sparsity.finetune_epochs=2",
]
LAYERS = {"features.0": (16, 1, 3, 3), "features.3": (32, 16, 3, 3), "classifier": (10, 32)}


def run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def one_line_error(code: int, err: str, needles: list[str]) -> None:
    assert code == 2, err
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"


@pytest.fixture(scope="module")
def pruned_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "pruned"
    record = train_run(load_config(None, TINY), out, progress=False)
    assert record is not None
    return out


def model_tensors(path: Path) -> tuple[dict, dict]:
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["hamq"])
        return {k: f.get_tensor(k) for k in f.keys()}, meta


def test_run_stores_mask_parameters_and_pruned_weights(pruned_run: Path) -> None:
    record = json.loads((pruned_run / "run.json").read_text())
    masks = {m["name"]: m for m in record["masks"]}
    assert set(masks) == set(LAYERS)
    for name, shape in LAYERS.items():
        n = math.prod(shape)
        assert masks[name] == {
            "name": name,
            "shape": list(shape),
            "sparsity": 0.5,
            "poly": [9, 4],
            "seed": 1,
            "form": "fibonacci",
            "kept": n - n // 2,
        }
    tensors, meta = model_tensors(pruned_run / "model.safetensors")
    assert meta["masks"] == record["masks"]
    assert not any("mask" in k for k in tensors)  # the masks themselves are never saved
    for name, shape in LAYERS.items():
        w = tensors[f"{name}.weight"]
        keep = lfsr_mask(shape, 0.5, [9, 4], 1)
        assert int((w[~keep] != 0).sum()) == 0
        assert int((w[keep] != 0).sum()) > 0.9 * int(keep.sum())
    cfg = yaml.safe_load((pruned_run / "config.yaml").read_text())
    assert cfg["sparsity"]["sparsity"] == 0.5


def test_phases_regularize_then_fine_tune(pruned_run: Path) -> None:
    record = json.loads((pruned_run / "run.json").read_text())
    reg = [h["reg"] for h in record["history"]]
    assert reg[0] == 0.0  # float epoch
    assert reg[1] > 0.0  # regularized QAT epoch: the prune term
    assert reg[2] == 0.0 and reg[3] == 0.0  # masks fixed: the term is exactly 0
    assert record["evaluation"]["selected_epoch"] >= 2  # only fine-tune epochs are kept


def test_eval_rebuilds_the_masks(pruned_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = json.loads((pruned_run / "run.json").read_text())
    code, out, err = run(capsys, ["eval", str(pruned_run), "--json"])
    assert code == 0, err
    result = json.loads(out)
    assert result["accuracy"] == pytest.approx(record["accuracy"])
    assert result["cells"]["on"] == record["cells"]["on"]


def test_resume_across_the_prune_epoch_gives_the_same_record(
    pruned_run: Path, tmp_path: Path
) -> None:
    cfg = load_config(None, TINY)
    out = tmp_path / "resumed"
    assert train_run(cfg, out, stop_after=2, progress=False) is None  # stops before pruning
    record = train_run(cfg, out, resume=True, progress=False)
    full = json.loads((pruned_run / "run.json").read_text())
    assert record is not None
    assert record["history"] == full["history"]
    assert record["accuracy"] == full["accuracy"] and record["masks"] == full["masks"]


@pytest.fixture
def run_copy(pruned_run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(pruned_run, dst)
    return dst


def rewrite_model(
    run_dir: Path, edit_tensors=None, edit_meta=None, seed: int | None = None
) -> None:
    """Rewrite the run's weights file (and, with ``seed``, the LFSR seed everywhere the run
    records its config), keeping the folder otherwise self-consistent: run.json's
    ``model_sha256`` (where hamq records one) follows the new file."""
    path = run_dir / "model.safetensors"
    tensors, meta = model_tensors(path)
    record = json.loads((run_dir / "run.json").read_text())
    if seed is not None:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
        for c in (cfg, meta["config"], record["config"]):
            c["sparsity"]["seed"] = seed
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    if edit_tensors:
        edit_tensors(tensors)
    if edit_meta:
        edit_meta(meta)
    save_file(tensors, str(path), metadata={"hamq": json.dumps(meta)})
    if "model_sha256" in record:
        record["model_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (run_dir / "run.json").write_text(json.dumps(record, indent=2))


def test_eval_weights_violating_the_mask(run_copy: Path, capsys) -> None:
    def revive(t: dict) -> None:
        w = t["features.3.weight"]
        w[~lfsr_mask(tuple(w.shape), 0.5, [9, 4], 1)] = 0.01

    rewrite_model(run_copy, edit_tensors=revive)
    code, _, err = run(capsys, ["eval", str(run_copy)])
    one_line_error(code, err, ["features.3", "2304 non-zero weight(s) outside its LFSR mask"])


def test_eval_mask_parameters_disagreeing_with_weights(run_copy: Path, capsys) -> None:
    # config and stored parameters agree with each other (seed 2), not with the weights
    def reseed(meta: dict) -> None:
        for m in meta["masks"]:
            m["seed"] = 2

    rewrite_model(run_copy, edit_meta=reseed, seed=2)
    code, _, err = run(capsys, ["eval", str(run_copy)])
    one_line_error(code, err, ["features.0", "seed 2", "disagree with its weights"])


def test_eval_stored_parameters_disagreeing_with_config(run_copy: Path, capsys) -> None:
    def resparse(meta: dict) -> None:
        meta["masks"][1]["sparsity"] = 0.7

    rewrite_model(run_copy, edit_meta=resparse)
    code, _, err = run(capsys, ["eval", str(run_copy)])
    one_line_error(code, err, ["features.3", "sparsity 0.7", "disagree with the run's config"])


def test_eval_mask_that_does_not_fit(run_copy: Path, capsys) -> None:
    def reshape(meta: dict) -> None:
        meta["masks"][2]["shape"] = [10, 64]

    rewrite_model(run_copy, edit_meta=reshape)
    code, _, err = run(capsys, ["eval", str(run_copy)])
    one_line_error(code, err, ["classifier", "[10, 64]", "does not fit"])


BAD = [
    ("sparsity 1", ["sparsity.sparsity=1.0"], ["sparsity.sparsity", "outside [0, 1)"]),
    ("sparsity negative", ["sparsity.sparsity=-0.1"], ["sparsity.sparsity", "outside [0, 1)"]),
    (
        "layer sparsity 1",
        ["sparsity.sparsity=0.5", "sparsity.layers={classifier: {sparsity: 1}}"],
        ["sparsity.layers.classifier.sparsity", "outside [0, 1)"],
    ),
    (
        "unknown layer",
        ["sparsity.sparsity=0.5", "sparsity.layers={features.4: {sparsity: 0.9}}"],
        ["features.4", "did you mean 'features."],
    ),
    (
        "period too short",
        ["sparsity.sparsity=0.5", "sparsity.poly=[4, 2]"],
        ["features.3", "period 6, too short"],
    ),
    ("seed too large", ["sparsity.sparsity=0.5", "sparsity.seed=512"], ["seed 512", "1..511"]),
    ("bad polynomial", ["sparsity.sparsity=0.5", "sparsity.poly=[9, 9]"], ["sparsity.poly"]),
    ("unused lambda", ["sparsity.lambda=0.1"], ["sparsity.lambda", "no mask"]),
    (
        "unused layer seed",
        ["sparsity.sparsity=0.5", "sparsity.layers={classifier: {sparsity: 0, seed: 3}}"],
        ["sparsity.layers.classifier.seed", "sparsity 0"],
    ),
    (
        "finetune too long",
        ["sparsity.sparsity=0.5", "sparsity.finetune_epochs=5", "train.qat_epochs=2"],
        ["finetune_epochs = 5", "qat_epochs = 2"],
    ),
    (
        "no epoch for lambda",
        ["sparsity.sparsity=0.5", "sparsity.lambda=1", "sparsity.finetune_epochs=2"],
        ["sparsity.lambda", "leaves no epoch"],
    ),
    (
        "lambda with from_float",
        ["sparsity.sparsity=0.5", "sparsity.from_float=true", "sparsity.lambda=0.1"],
        ["sparsity.lambda", "from_float", "nothing to push"],
    ),
    (
        "finetune with from_float",
        ["sparsity.sparsity=0.5", "sparsity.from_float=true", "sparsity.finetune_epochs=1"],
        ["sparsity.finetune_epochs", "from_float"],
    ),
    ("unused from_float", ["sparsity.from_float=true"], ["sparsity.from_float", "no mask"]),
    (
        "proximal without lambda",
        ["sparsity.sparsity=0.5", "sparsity.update=proximal"],
        ["sparsity.update = proximal", "lambda = 0", "do nothing"],
    ),
    (
        "bad update",
        ["sparsity.sparsity=0.5", "sparsity.update=prox"],
        ["sparsity.update", "'gradient' or 'proximal'"],
    ),
    ("unused update", ["sparsity.update=proximal"], ["sparsity.update", "no mask"]),
    ("prune as main term", ["regularizer.name=prune"], ["regularizer.name", "sparsity section"]),
    (
        "bad granularity",
        ["sparsity.sparsity=0.5", "sparsity.granularity=column"],
        ["sparsity.granularity", "'weight' or 'row'"],
    ),
    ("unused granularity", ["sparsity.granularity=row"], ["sparsity.granularity", "no mask"]),
    ("misspelled key", ["sparsity.sparsty=0.5"], ["sparsity.sparsty", "did you mean 'sparsity'"]),
]


@pytest.mark.parametrize(("case", "sets", "needles"), BAD, ids=[c[0] for c in BAD])
def test_bad_sparsity_input(case, sets, needles, tmp_path: Path, capsys) -> None:
    args = ["train", "--out", str(tmp_path / "r"), "--quiet"]
    args += ["--set", "train.float_epochs=1", "--set", "train.qat_epochs=2"]
    for s in sets:
        args += ["--set", s]
    code, _, err = run(capsys, args)
    one_line_error(code, err, needles)
    assert not (tmp_path / "r" / "checkpoint.safetensors").exists()  # failed before training


def test_non_primitive_polynomial_warns_with_its_period() -> None:
    from hamq.data import DataConfig  # noqa: F401  (the digits CNN needs no data to build)
    from hamq.models import ModelConfig, build_model

    cfg = load_config(None, ["sparsity.sparsity=0.9", "sparsity.poly=[4, 2]"])
    model = build_model(ModelConfig(), (1, 8, 8), 10)
    with pytest.warns(LfsrWarning, match=r"x\^4\+x\^2\+1 is not primitive.*period is 6, not 15"):
        masks = check_config(model, cfg.quant, cfg.sparsity)
    assert len(masks) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_config(model, cfg.quant, load_config(None, ["sparsity.sparsity=0.9"]).sparsity)


def test_hamq_train_prints_the_non_primitive_warning_on_one_line(tmp_path: Path, capsys) -> None:
    args = ["train", "--out", str(tmp_path / "r"), "--quiet", "--set", "train.float_epochs=0",
            "--set", "train.qat_epochs=1", "--set", "sparsity.sparsity=0.9", "--set",
            "sparsity.poly=[4, 2]"]  # fmt: skip
    code, _, err = run(capsys, args)
    assert code == 0
    lines = [ln for ln in err.splitlines() if "not primitive" in ln]
    assert len(lines) == 1 and "period is 6, not 15" in lines[0]
    assert "warnings.warn" not in err  # not Python's second line with the source
    assert (tmp_path / "r" / "run.json").is_file()  # a warning, not an error


def test_dense_configs_read_as_before() -> None:
    cfg = TrainConfig()
    assert "sparsity" not in cfg.to_plain()  # saved dense runs still match their config
    assert "sparsity" in load_config(None, ["sparsity.sparsity=0.3"]).to_plain()


def test_sweep_baseline_is_the_dense_unregularized_run() -> None:
    from hamq.experiments.sweep import add_reductions

    rows = [
        {"name": "base", "status": "ok", "w_bits": 8, "seed": 0, "regularizer": "none",
         "pruned": False, "accuracy": 0.9, "cells_on": 100},
        {"name": "prune", "status": "ok", "w_bits": 8, "seed": 0, "regularizer": "none",
         "pruned": True, "accuracy": 0.8, "cells_on": 40},
    ]  # fmt: skip
    add_reductions(rows)
    assert rows[1]["cells_on_reduction"] == pytest.approx(0.6)  # against base, not itself
    assert rows[1]["accuracy_delta_pp"] == pytest.approx(-10.0)


def test_each_phase_runs_its_own_schedule() -> None:
    from hamq.sparsity.phases import prune_epoch, schedule_window

    cfg = load_config(None, [*TINY, "train.float_epochs=2", "train.qat_epochs=5"])
    assert prune_epoch(cfg) == 5  # 2 float + 3 regularized; fine-tune epochs 5 and 6
    assert [schedule_window(cfg, e) for e in range(2, 7)] == [(2, 3)] * 3 + [(5, 2)] * 2
    dense = load_config(None, ["train.float_epochs=2", "train.qat_epochs=5"])
    assert prune_epoch(dense) is None
    assert {schedule_window(dense, e) for e in range(2, 7)} == {(2, 5)}


def test_row_granular_run_maps_index_free(tmp_path: Path, capsys) -> None:
    """A run pruned by rows: stored as parameters with its granularity, rebuilt on load,
    and mapped index-free by ``hamq energy`` (fewer rows and cells than dense, the LFSR
    charged), with the crossbar accuracy equal to the ideal one on lossless arrays."""
    out = tmp_path / "rows"
    record = train_run(load_config(None, [*TINY, "sparsity.granularity=row"]), out,
                       progress=False)  # fmt: skip
    assert record is not None
    _, meta = model_tensors(out / "model.safetensors")
    assert {m["granularity"] for m in meta["masks"]} == {"row"}
    for m in meta["masks"]:
        mask = lfsr_mask(m["shape"], m["sparsity"], m["poly"], m["seed"], m["form"], "row")
        assert int(mask.sum()) == m["kept"]
    code, text, err = run(capsys, ["energy", str(out), "--hw", "rram-2b-40nm", "--samples", "50",
                                   "--json"])  # fmt: skip
    assert code == 0, err
    report = json.loads(text)
    for layer in report["layers"]:
        k = math.prod(LAYERS[layer["name"]][1:])
        assert layer["dense_rows"] == k and layer["rows"] == k - math.floor(0.5 * k)
        assert layer["lfsr_clocks"] > 0 and layer["csr_index_bits"] > 0
    assert report["totals"]["cells"] < report["totals"]["dense_cells"]
    code, text, err = run(capsys, ["energy", str(out), "--hw", "rram-2b-40nm", "--samples", "50"])
    assert code == 0 and "index-free layer" in text, err


SPARSE_FLOAT = [
    "train.float_epochs=2",
    "train.qat_epochs=2",
    "sparsity.sparsity=0.5",
    "sparsity.granularity=row",
    "sparsity.from_float=true",
]


def _satisfies_masks(tensors: dict, masks: list[dict], what: str) -> None:
    assert {m["name"] for m in masks} == set(LAYERS)
    for m in masks:
        keep = lfsr_mask(m["shape"], m["sparsity"], m["poly"], m["seed"], m["form"], "row")
        w = tensors[f"{m['name']}.weight"]
        assert int((w[~keep] != 0).sum()) == 0, f"{what}: {m['name']} has weights outside"
        assert int((w[keep] != 0).sum()) > 0.9 * int(keep.sum()), f"{what}: {m['name']} died"


@pytest.fixture(scope="module")
def sparse_float_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "sparse-float"
    assert train_run(load_config(None, SPARSE_FLOAT), out, progress=False) is not None
    return out


def test_from_float_trains_the_pruned_network_in_the_float_stage(
    sparse_float_run: Path,
) -> None:
    """With sparsity.from_float the float weights already satisfy the masks (the float
    stage trained the pruned network), the float file records those masks, and every QAT
    epoch is a fine-tune with the masks fixed (no prune term, every epoch selectable)."""
    from hamq.sparsity.phases import prune_epoch, schedule_window

    tensors, meta = model_tensors(sparse_float_run / "float.safetensors")
    _satisfies_masks(tensors, meta["masks"], "float stage")
    record = json.loads((sparse_float_run / "run.json").read_text())
    assert meta["masks"] == record["masks"]
    _satisfies_masks(model_tensors(sparse_float_run / "model.safetensors")[0], record["masks"],
                     "final model")  # fmt: skip
    assert [h["reg"] for h in record["history"]] == [0.0] * 4
    cfg = load_config(None, SPARSE_FLOAT)
    assert prune_epoch(cfg) == 2
    assert [schedule_window(cfg, e) for e in (2, 3)] == [(2, 2)] * 2


def test_from_float_resumes_inside_the_pruned_float_stage(
    sparse_float_run: Path, tmp_path: Path
) -> None:
    """A run stopped after its first float epoch resumes pruned (the optimizer hook is
    installed again) and ends where the uninterrupted run ended."""
    cfg = load_config(None, SPARSE_FLOAT)
    out = tmp_path / "resumed"
    assert train_run(cfg, out, stop_after=1, progress=False) is None
    record = train_run(cfg, out, resume=True, progress=False)
    full = json.loads((sparse_float_run / "run.json").read_text())
    assert record is not None
    assert record["history"] == full["history"]
    assert record["model_sha256"] == full["model_sha256"]


def test_from_float_retrains_dense_float_weights_pruned(pruned_run: Path, tmp_path: Path) -> None:
    """From a dense run's float weights (train.init_from): hard-pruned before the first
    float step, so the retrained float stage satisfies the masks too."""
    dense, _ = model_tensors(pruned_run / "float.safetensors")
    assert any(int((dense[f"{n}.weight"] == 0).sum()) == 0 for n in LAYERS)  # dense really
    cfg = load_config(None, [*SPARSE_FLOAT, "train.float_epochs=1",
                             f"train.init_from={pruned_run}"])  # fmt: skip
    out = tmp_path / "retrain"
    assert train_run(cfg, out, progress=False) is not None
    tensors, meta = model_tensors(out / "float.safetensors")
    _satisfies_masks(tensors, meta["masks"], "retrained float stage")


def test_qat_runs_share_a_pruned_float_stage_only_under_its_masks(
    sparse_float_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """QAT from a pruned float stage (train.init_from) with the same sparsity section keeps
    the masks; another sparsity, or none, is refused in one line naming the file."""
    same = [*SPARSE_FLOAT, "train.float_epochs=0", f"train.init_from={sparse_float_run}",
            "regularizer.name=hamming", "regularizer.lambda=1"]  # fmt: skip
    out = tmp_path / "qat"
    record = train_run(load_config(None, same), out, progress=False)
    assert record is not None
    _satisfies_masks(model_tensors(out / "model.safetensors")[0], record["masks"], "QAT run")
    float_file = sparse_float_run / "float.safetensors"
    for case, sets in (
        (
            "other sparsity",
            ["sparsity.sparsity=0.3", "sparsity.granularity=row", "sparsity.from_float=true"],
        ),
        ("dense", []),
    ):
        args = ["train", "--out", str(tmp_path / case.replace(" ", "-")), "--quiet"]
        for x in ["train.float_epochs=0", f"train.init_from={sparse_float_run}", *sets]:
            args += ["--set", x]
        code, _, err = run(capsys, args)
        one_line_error(code, err, [str(float_file), "other LFSR masks", "features.0"])
