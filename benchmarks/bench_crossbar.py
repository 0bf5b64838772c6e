"""Speed of the crossbar simulation against ideal quantized inference of the same data.

Run: ``python benchmarks/bench_crossbar.py --run RUN [--run RUN2 ...]`` with trained KWS
runs (see BENCHMARKS.md for the runs used and the commands that train them). Per run,
over its whole test split (batch 256):

- ``ideal``: the model's own quantized forward (fake-quantized, float32);
- ``crossbar``: every layer computed by its crossbars through the ADC of ``--hw``
  (default ``rram-1b``, its 5-bit ADC, ranges calibrated on the validation split;
  calibration is timed apart, it is done once per run and hardware);
- ``crossbar-lossy`` (first ``--lossy-samples`` test samples, ``ideal`` timed again on
  them): a 3-bit ADC, so that every layer's conversions clip and round and no layer or
  column takes the lossless shortcut: the worst case.

Target (issue 9): ``crossbar / ideal <= 30``. Timing method as ``bench_energy.py``
(one thread, warm-up, interleaved rounds, process CPU time, glibc told to keep freed
memory).
"""

from __future__ import annotations

import argparse
import json
import time

from bench_energy import interleaved, keep_freed_memory, machine

_MALLOC_KEPT = keep_freed_memory()

import torch  # noqa: E402

from hamq.hardware.simulate import crossbar_layers, plan_adc, simulating  # noqa: E402
from hamq.hardware.spec import load_hardware  # noqa: E402
from hamq.training.crossbar_eval import calibration_split  # noqa: E402
from hamq.training.runs import load_run  # noqa: E402


def bench_run(run_dir: str, hw_name: str, repeats: int, lossy_samples: int) -> dict[str, object]:
    run = load_run(run_dir)
    data, model = run.data(), run.model.eval()
    batches = [x for x, _ in data.test_batches(256)]
    few = [x for x, _ in data.test_batches(256, lossy_samples)]
    calib, split = calibration_split(data, None, 256)

    def planned(hw_overrides: dict[str, object]) -> tuple[list, float]:
        hw = load_hardware(hw_name, **hw_overrides)
        sims = crossbar_layers(model, hw)
        start = time.process_time()
        plan_adc(model, sims, hw, calib)
        return sims, time.process_time() - start

    preset, plan_s = planned({})
    lossy, lossy_plan_s = planned({"adc.bits": 3})

    def ideal(xs: list[torch.Tensor]) -> None:
        with torch.no_grad():
            for x in xs:
                model(x)

    def crossbar(sims: list, xs: list[torch.Tensor]) -> None:
        with simulating(model, sims):
            for x in xs:
                model(x)

    full = interleaved(
        {"ideal": lambda: ideal(batches), "crossbar": lambda: crossbar(preset, batches)},
        repeats,
    )
    worst = interleaved(
        {"ideal": lambda: ideal(few), "crossbar-lossy": lambda: crossbar(lossy, few)},
        repeats,
    )
    lossless_layers = sum(s.provably_lossless() for s in preset)
    out = {
        "run": run_dir,
        "hardware": hw_name,
        "test_samples": sum(int(x.shape[0]) for x in batches),
        "lossy_samples": sum(int(x.shape[0]) for x in few),
        "calibration": f"{sum(int(y.numel()) for _, y in calib)} {split} samples",
        "layers": len(preset),
        "layers_lossless_at_preset": lossless_layers,
        "plan_cpu_s": round(plan_s, 3),
        "plan_lossy_cpu_s": round(lossy_plan_s, 3),
        "ratio_crossbar": min(full["crossbar"].cpu_s) / min(full["ideal"].cpu_s),
        "ratio_crossbar_lossy": min(worst["crossbar-lossy"].cpu_s) / min(worst["ideal"].cpu_s),
    }
    head = f"{run_dir} on {hw_name} ({out['test_samples']} test samples"
    print(f"\n{head}, {lossless_layers}/{len(preset)} layers provably lossless at its ADC)")
    for name, t in full.items():
        print(t.line(name))
    for name, t in worst.items():
        print(t.line(f"{name} ({out['lossy_samples']})"))
    print(f"  crossbar / ideal = {out['ratio_crossbar']:.2f}x (target <= 30x); "
          f"3-bit lossy / ideal = {out['ratio_crossbar_lossy']:.2f}x")  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", required=True, help="trained run folder")
    parser.add_argument("--hw", default="rram-1b")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lossy-samples", type=int, default=512)
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(machine(), f"glibc keep-freed-memory: {_MALLOC_KEPT}")
    rows = [bench_run(r, args.hw, args.repeats, args.lossy_samples) for r in args.run]
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
