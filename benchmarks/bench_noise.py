"""Speed of noisy evaluation and noise-aware training (issue 10), as ratios taken in one run.

Run: ``python benchmarks/bench_noise.py [--json FILE]``. DS-CNN (random weights, 8-bit,
quantizers calibrated) on 1,024 random 49x10 MFCC-shaped inputs, ``pcm-14nm``:

- ``crossbar``: the noiseless crossbar simulation (ADC ranges planned once, untimed);
- ``crossbar-noisy``: one programming read at one day (program every cell, drift, read
  noise, compensation) plus the same crossbar simulation on the noisy levels;
  ``crossbar-noisy-ideal-adc``: the same with ideal conversions (no ADC plan), where each
  weight's noisy cells are recombined before one convolution, as aihwkit's tile does;
  ``crossbar-noisy-adapt-bn``: ``crossbar-noisy`` with the BatchNorm statistics first
  re-estimated through the noisy arrays on 256 calibration inputs (``--adapt-bn``);
  ``crossbar-noisy-4-devices``: ``crossbar-noisy`` on arrays of 4 devices per cell
  (``array.devices_per_cell``: 4 draws per cell, averaged);
- ``float``: the float model's forward; ``aihwkit-noisy`` (when aihwkit is installed):
  aihwkit's ``TorchInferenceRPUConfig`` tile with ``PCMLikeNoiseModel`` and global drift
  compensation, ``drift_analog_weights(1 day)`` plus the forward; the depthwise
  convolutions stay digital (aihwkit converts no grouped conv);
- ``qat-step`` / ``nat-step``: one training step (batch 100, forward, backward, Adam) of the
  quantized model without / with noise-aware training (``analog.noise``).

Targets: crossbar-noisy / crossbar <= 2; nat-step / qat-step <= 1.3; hamq's noisy
inference faster than aihwkit's. Timing as ``bench_energy.py`` (one thread, warm-up,
interleaved rounds, process CPU time).
"""

from __future__ import annotations

import argparse
import copy
import json

from bench_energy import converted, interleaved, keep_freed_memory, machine

_MALLOC_KEPT = keep_freed_memory()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from hamq.hardware.simulate import crossbar_layers, plan_adc, simulating  # noqa: E402
from hamq.hardware.spec import load_hardware  # noqa: E402
from hamq.models import ModelConfig, build_model  # noqa: E402
from hamq.training import analog  # noqa: E402
from hamq.training.adabs import adapt_batchnorm, kept_batchnorm_stats  # noqa: E402

DAY_S = 86400.0


def bench_inference(repeats: int) -> dict[str, object]:
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(1024, 1, 49, 10, generator=gen)
    batches = [data[i : i + 256] for i in range(0, 1024, 256)]
    model = converted("ds-cnn", (1, 49, 10), 12, data[:256])
    hw = load_hardware("pcm-14nm")
    assert hw.device is not None
    sims = crossbar_layers(model, hw)
    labels = torch.zeros(256, dtype=torch.int64)
    calibration = torch.randn(256, 1, 49, 10, generator=gen)
    plan_adc(model, sims, hw, [(data[:256], labels)])

    def crossbar() -> None:
        with simulating(model, sims):
            for x in batches:
                model(x)

    def crossbar_noisy(layers: list = sims, adapt: bool = False) -> None:  # type: ignore[type-arg]
        g = torch.Generator().manual_seed(1)
        for s in layers:
            s.program(hw.device, g)
            s.read_at(DAY_S, hw.device, g)
        try:
            with kept_batchnorm_stats(model):
                if adapt:  # AdaBS on 256 calibration inputs (KWS: 300 per 1,179 test)
                    with simulating(model, layers):
                        adapt_batchnorm(model, [(calibration, labels)])
                    for s in layers:  # the test pass reads again (fresh read noise)
                        s.read_at(DAY_S, hw.device, g)
                with simulating(model, layers):
                    for x in batches:
                        model(x)
        finally:
            for s in layers:
                s.clear_noise()

    ideal_adc = crossbar_layers(model, hw)  # no plan: ideal conversions
    four = crossbar_layers(model, load_hardware("pcm-14nm", **{"array.devices_per_cell": 4}))
    plan_adc(model, four, hw, [(data[:256], labels)])

    torch.manual_seed(0)
    float_model = build_model(ModelConfig(name="ds-cnn"), (1, 49, 10), 12).eval()

    def float_forward() -> None:
        with torch.no_grad():
            for x in batches:
                float_model(x)

    variants = {
        "float": float_forward,
        "crossbar": crossbar,
        "crossbar-noisy": crossbar_noisy,
        "crossbar-noisy-ideal-adc": lambda: crossbar_noisy(ideal_adc),
        "crossbar-noisy-adapt-bn": lambda: crossbar_noisy(sims, adapt=True),
        "crossbar-noisy-4-devices": lambda: crossbar_noisy(four),
    }
    aihwkit = _aihwkit_variant(float_model, batches)
    if aihwkit is not None:
        variants["aihwkit-noisy"] = aihwkit
    t = interleaved(variants, repeats)
    best = {k: min(v.cpu_s) for k, v in t.items()}
    print("\ninference, DS-CNN, 1024 inputs, pcm-14nm, t = 1 day")
    for name, timing in t.items():
        print(timing.line(name))
    out: dict[str, object] = {
        "cpu_s": best,
        "noisy_over_noiseless": best["crossbar-noisy"] / best["crossbar"],
    }
    print(f"  crossbar-noisy / crossbar = {out['noisy_over_noiseless']:.2f}x (target <= 2x)")
    out["adapt_bn_over_noiseless"] = best["crossbar-noisy-adapt-bn"] / best["crossbar"]
    print(f"  crossbar-noisy-adapt-bn / crossbar = {out['adapt_bn_over_noiseless']:.2f}x")
    out["four_devices_over_noiseless"] = best["crossbar-noisy-4-devices"] / best["crossbar"]
    print(f"  crossbar-noisy-4-devices / crossbar = {out['four_devices_over_noiseless']:.2f}x")
    if "aihwkit-noisy" in best:
        out["aihwkit_over_float"] = best["aihwkit-noisy"] / best["float"]
        out["hamq_noisy_over_aihwkit"] = best["crossbar-noisy"] / best["aihwkit-noisy"]
        out["hamq_ideal_adc_over_aihwkit"] = (
            best["crossbar-noisy-ideal-adc"] / best["aihwkit-noisy"]
        )
        print(f"  aihwkit-noisy / float = {out['aihwkit_over_float']:.2f}x; "
              f"hamq crossbar-noisy / aihwkit-noisy = {out['hamq_noisy_over_aihwkit']:.2f}x; "
              f"ideal ADCs: {out['hamq_ideal_adc_over_aihwkit']:.2f}x")  # fmt: skip
    return out


def _aihwkit_variant(float_model: torch.nn.Module, batches: list[torch.Tensor]):  # type: ignore[no-untyped-def]
    try:
        from aihwkit.inference.compensation.drift import GlobalDriftCompensation
        from aihwkit.inference.noise.pcm import PCMLikeNoiseModel
        from aihwkit.nn.conversion import convert_to_analog
        from aihwkit.simulator.configs import TorchInferenceRPUConfig
    except ImportError:
        print("aihwkit not installed: its comparison is left out")
        return None
    rpu = TorchInferenceRPUConfig()
    rpu.noise_model = PCMLikeNoiseModel(g_max=25.0)
    rpu.drift_compensation = GlobalDriftCompensation()
    grouped = [n for n, m in float_model.named_modules()
               if isinstance(m, torch.nn.Conv2d) and m.groups > 1]  # fmt: skip
    analog_model = convert_to_analog(copy.deepcopy(float_model), rpu, exclude_modules=grouped)
    analog_model.eval()

    def run() -> None:
        with torch.no_grad():
            analog_model.drift_analog_weights(DAY_S)
            for x in batches:
                analog_model(x)

    return run


def bench_training(repeats: int) -> dict[str, object]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(100, 1, 49, 10, generator=gen)
    y = torch.randint(0, 12, (100,), generator=gen)
    hw = load_hardware("pcm-14nm")
    plain = converted("ds-cnn", (1, 49, 10), 12, x).train()
    noisy = copy.deepcopy(plain)
    analog.attach(noisy, hw, analog.AnalogTrainConfig(noise=True, clip_sigma=3.0), seed=0)
    opts = {id(m): torch.optim.Adam(m.parameters(), lr=1e-4) for m in (plain, noisy)}

    def step(model: torch.nn.Module, clip: bool) -> None:
        loss = F.cross_entropy(model(x), y)
        opt = opts[id(model)]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if clip:
            analog.clip_weights(model, analog.AnalogTrainConfig(noise=True, clip_sigma=3.0))

    t = interleaved({"qat-step": lambda: step(plain, False), "nat-step": lambda: step(noisy, True)},
                    repeats)  # fmt: skip
    best = {k: min(v.cpu_s) for k, v in t.items()}
    print("\ntraining step, DS-CNN, batch 100")
    for name, timing in t.items():
        print(timing.line(name))
    ratio = best["nat-step"] / best["qat-step"]
    print(f"  nat-step / qat-step = {ratio:.2f}x (target <= 1.3x)")
    return {"cpu_s": best, "nat_over_qat": ratio}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(machine(), f"glibc keep-freed-memory: {_MALLOC_KEPT}")
    out = {"inference": bench_inference(args.repeats), "training": bench_training(args.repeats)}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
