"""Programmed and drifted PCM conductances, hamq against IBM aihwkit's ``PCMLikeNoiseModel``:
mean and sd of g(t) per level and time, and a two-sample KS test, for the same targets.

    python scripts/conductance_crosscheck.py [--draws 20000] [--seed 0]

hamq programs ``pcm-14nm``'s levels (``hamq.hardware.noise.program``) and reads them at
each time (``conductances_at``); aihwkit programs the same target conductances with
``apply_programming_noise_to_conductance`` and drifts them with its own per-device
exponents (``generate_drift_coefficients``, ``apply_drift_noise_to_conductance``).
Read noise is not in either (it is drawn at each read, not stored in the device).
``tests/test_aihwkit_crosscheck.py`` asserts the same comparison. aihwkit must be installed
(``docs/noise.md``).
"""

from __future__ import annotations

import argparse
import sys

import torch

from hamq.hardware.noise import conductances_at, program, time_label
from hamq.hardware.spec import DeviceSpec, load_hardware

LEVELS = (0, 1, 3, 6, 9, 12, 15)
TIMES_S = (0.0, 3600.0, 86400.0, 365.25 * 86400.0)  # programmed, 1 h, 1 d, 1 y


def aihwkit_conductances(g_t: torch.Tensor, t_s: float, seed: int) -> torch.Tensor:
    """aihwkit's programmed-then-drifted conductances (uS) of targets ``g_t`` at ``t_s``."""
    from aihwkit.inference.noise.pcm import PCMLikeNoiseModel

    torch.manual_seed(seed)
    model = PCMLikeNoiseModel(g_max=25.0)
    g_prog = model.apply_programming_noise_to_conductance(g_t)
    nu = model.generate_drift_coefficients(g_t)
    return model.apply_drift_noise_to_conductance(g_prog, nu, t_s)


def hamq_conductances(level: int, n: int, device: DeviceSpec, t_s: float,
                      seed: int) -> torch.Tensor:  # fmt: skip
    """hamq's conductances (uS) of ``n`` cells programmed to ``level``, at ``t_s``."""
    gen = torch.Generator().manual_seed(seed)
    cells = program(torch.full((n,), level, dtype=torch.int64), device, gen)
    return conductances_at(cells, t_s, device, gen)


def rows(n: int, seed: int) -> list[str]:
    from scipy.stats import ks_2samp

    device = load_hardware("pcm-14nm").device
    assert device is not None
    out = []
    for level in LEVELS:
        g = device.g_levels_us[level]
        for t_s in TIMES_S:
            ours = hamq_conductances(level, n, device, t_s, seed + level)
            ref = aihwkit_conductances(torch.full((n,), g, dtype=torch.float64), t_s,
                                       seed + 100 + level)  # fmt: skip
            p = ks_2samp(ours.numpy(), ref.numpy()).pvalue
            out.append(
                f"| {level} | {g:.2f} | {time_label(t_s) if t_s else 'programmed'} | "
                f"{float(ours.mean()):.3f} ± {float(ours.std()):.3f} | "
                f"{float(ref.mean()):.3f} ± {float(ref.std()):.3f} | {p:.2f} |"
            )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--draws", type=int, default=20_000, help="devices per level and time")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.draws < 2:
        print("error: --draws must be at least 2", file=sys.stderr)
        return 2
    try:
        import aihwkit  # noqa: F401
    except ImportError:
        print("error: aihwkit is not installed; pip install --no-deps --only-binary=:all: "
              "aihwkit (docs/noise.md)", file=sys.stderr)  # fmt: skip
        return 2
    print(f"{args.draws} devices per level and time, seeds {args.seed}+level (hamq) and "
          f"{args.seed}+100+level (aihwkit)\n")  # fmt: skip
    print("| level | target (uS) | t | hamq g(t) (uS) | aihwkit g(t) (uS) | KS p |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows(args.draws, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
