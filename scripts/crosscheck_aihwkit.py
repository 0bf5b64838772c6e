"""Accuracy over time of one small model on noisy PCM arrays: hamq against IBM aihwkit.

    hamq train --out runs/xcheck-w4 --set quant.w_bits=4 --set quant.granularity=per_channel
    python scripts/crosscheck_aihwkit.py --run runs/xcheck-w4 --json xcheck.json

Both sides get the same weights, the run's 4-bit integers times their per-channel scales,
and the same target conductances. aihwkit maps each weight to one device per sign with
column-wise weight scaling (omega 1), so each output channel's largest weight sits at
g_max = 25 uS. hamq uses ``configs/hardware/pcm-aihwkit-4b.yaml``: a 3-bit magnitude in
one 4-bit cell per side, with level 7 at 25 uS.

- aihwkit: ``TorchInferenceRPUConfig`` with ``PCMLikeNoiseModel(g_max=25)``,
  ``GlobalDriftCompensation`` and a perfect periphery (``forward.is_perfect``).
- hamq: the crossbar simulation with ideal conversions.

So the only noise on either side is the devices'. Each layer's input is quantized by the
run's input quantizer on both sides. For each of ``--repeats`` programmings, both read at
each time: aihwkit with ``program_analog_weights`` then ``drift_analog_weights(t)``, hamq
with ``LayerSim.program`` then ``read_at(t)``. The script reports the test accuracy, mean
± sd over the programmings, a two-sided Welch t-test of the means and a Brown-Forsythe
test of the sds per time. aihwkit must be installed (``docs/noise.md``).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import sys
from pathlib import Path

import torch
from torch import nn

from hamq.hardware.noise import parse_times, time_label
from hamq.hardware.simulate import count_correct_batches, crossbar_accuracy, crossbar_layers
from hamq.hardware.spec import load_hardware
from hamq.quantization.convert import quantized_layers
from hamq.training.runs import load_run

HERE = Path(__file__).resolve().parent.parent
DEFAULT_HW = HERE / "configs" / "hardware" / "pcm-aihwkit-4b.yaml"


def digital_twin(model: nn.Module) -> nn.Module:
    """A float copy of a converted model: each quantized layer becomes ``Sequential(its
    input quantizer, a plain Conv2d/Linear with the fake-quantized weights)``."""
    twin = copy.deepcopy(model).eval()
    for name, layer in quantized_layers(twin):
        if isinstance(layer, nn.Conv2d):
            plain: nn.Module = nn.Conv2d(layer.in_channels, layer.out_channels,
                                         layer.kernel_size, layer.stride, layer.padding,  # type: ignore[arg-type]
                                         layer.dilation, layer.groups,  # type: ignore[arg-type]
                                         bias=layer.bias is not None)  # fmt: skip
        else:
            plain = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
        with torch.no_grad():
            plain.weight.copy_(layer.weight_int().to(torch.float32) * layer.weight_scale())
            if layer.bias is not None:
                plain.bias.copy_(layer.bias)  # type: ignore[union-attr]
        parent = twin.get_submodule(name.rpartition(".")[0]) if "." in name else twin
        setattr(parent, name.rpartition(".")[2], nn.Sequential(layer.input_quant, plain))
    return twin


def aihwkit_model(twin: nn.Module) -> nn.Module:
    from aihwkit.inference.compensation.drift import GlobalDriftCompensation
    from aihwkit.inference.noise.pcm import PCMLikeNoiseModel
    from aihwkit.nn.conversion import convert_to_analog
    from aihwkit.simulator.configs import TorchInferenceRPUConfig

    rpu = TorchInferenceRPUConfig()
    rpu.forward.is_perfect = True
    rpu.mapping.weight_scaling_omega = 1.0
    rpu.mapping.weight_scaling_columnwise = True
    rpu.noise_model = PCMLikeNoiseModel(g_max=25.0)
    rpu.drift_compensation = GlobalDriftCompensation()
    grouped = [n for n, m in twin.named_modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    return convert_to_analog(twin, rpu, exclude_modules=grouped).eval()


def _testable(a: list[float], b: list[float]) -> bool:
    """Two samples a two-sample test can compare: 2+ values, not both constant."""
    return len(a) >= 2 and not (max(a) == min(a) and max(b) == min(b))


def welch_p(a: list[float], b: list[float]) -> float:
    from scipy.stats import ttest_ind

    return float(ttest_ind(a, b, equal_var=False).pvalue) if _testable(a, b) else float("nan")


def spread_p(a: list[float], b: list[float]) -> float:
    """Brown-Forsythe test (Levene's, about the median) that the two sds are equal."""
    from scipy.stats import levene

    return float(levene(a, b, center="median").pvalue) if _testable(a, b) else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--hw", default=str(DEFAULT_HW))
    parser.add_argument("--t", default="1s,1h,1d,1y")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    try:
        import aihwkit
    except ImportError:
        sys.exit("aihwkit is not installed; see docs/noise.md for the install command")
    torch.set_num_threads(1)
    run = load_run(args.run)
    data, model = run.data(), run.model.eval()
    hw = load_hardware(args.hw)
    assert hw.device is not None
    times = parse_times(args.t)
    batches = list(data.test_batches(256))
    n = sum(int(y.numel()) for _, y in batches)
    ideal, _ = count_correct_batches(model, batches)
    analog = aihwkit_model(digital_twin(model))
    floor, _ = count_correct_batches(digital_twin(model), batches)
    sims = crossbar_layers(model, hw)  # transfers None: ideal conversions
    ours = torch.zeros(args.repeats, len(times))
    theirs = torch.zeros(args.repeats, len(times))
    for r in range(args.repeats):
        gen = torch.Generator().manual_seed(1000 + r)
        for s in sims:
            s.program(hw.device, gen)
        torch.manual_seed(2000 + r)
        analog.program_analog_weights()
        for j, t in enumerate(times):
            for s in sims:
                s.read_at(t, hw.device, gen)
            ours[r, j] = crossbar_accuracy(model, sims, batches)[0] / n
            analog.drift_analog_weights(t)
            theirs[r, j] = count_correct_batches(analog, batches)[0] / n
    rows = []
    print(f"{args.run}: {n} test samples, ideal {100 * ideal / n:.2f}% (digital twin "
          f"{100 * floor / n:.2f}%), {args.repeats} programmings; aihwkit "
          f"{aihwkit.__version__}")  # fmt: skip
    print(f"  {'t':>5}  {'hamq':>16}  {'aihwkit':>16}  {'Welch p':>8}  {'B-F p':>7}")
    for j, t in enumerate(times):
        a, b = ours[:, j].tolist(), theirs[:, j].tolist()
        row = {"t_s": t, "label": time_label(t), "hamq": a, "aihwkit": b,
               "hamq_mean": sum(a) / len(a), "aihwkit_mean": sum(b) / len(b),
               "hamq_sd": float(ours[:, j].std()), "aihwkit_sd": float(theirs[:, j].std()),
               "welch_p": welch_p(a, b), "spread_p": spread_p(a, b)}  # fmt: skip
        rows.append(row)
        p = "" if math.isnan(row["welch_p"]) else f"{row['welch_p']:.3f}"
        q = "" if math.isnan(row["spread_p"]) else f"{row['spread_p']:.3f}"
        ham = f"{100 * row['hamq_mean']:7.2f} ± {100 * row['hamq_sd']:5.2f}"
        aih = f"{100 * row['aihwkit_mean']:7.2f} ± {100 * row['aihwkit_sd']:5.2f}"
        print(f"  {row['label']:>5}  {ham}  {aih}  {p:>8}  {q:>7}")
    if args.json:
        out = {
            "run": args.run, "hardware": hw.name, "test_samples": n, "ideal": ideal / n,
            "digital_twin": floor / n, "repeats": args.repeats,
            "aihwkit": aihwkit.__version__, "machine": platform.machine(), "times": rows,
        }  # fmt: skip
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
