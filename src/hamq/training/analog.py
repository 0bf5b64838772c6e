"""Noise-aware training: the QAT forward computes with the weights noisy arrays give back.

Hardware-aware training in the style of aihwkit and AnalogNets (Zhou et al., IEEE Micro
2022), with hamq's own device model so training and evaluation draw the same noise:

- **Weight noise.** In every training forward, each quantized layer's integer weights are
  programmed and read by :func:`~hamq.hardware.noise.read_weights` on the run's hardware
  (``hardware.preset``: its representation, cell bits and ``device`` section), at
  ``analog.t_s`` seconds after programming (drift and read noise on top of programming
  noise, global drift compensation applied), and the difference, times ``analog.scale``,
  is added to the fake-quantized weight. It is a constant in the backward pass (straight
  through): gradients flow to the float weights as in plain QAT. Fresh draws every
  forward; the generator is seeded from the run's seed and the epoch, so a resumed run
  draws what an uninterrupted one would from that epoch on.
- **Weight clipping** (``analog.clip_sigma``): after every optimizer step, each quantized
  layer's float weights are clipped to ``clip_sigma`` standard deviations of their output
  channel (aihwkit's ``WeightClipType.LAYER_GAUSSIAN``, per channel here because the
  quantizer's scale is per channel). PCM noise is nearly constant in conductance, so a
  channel whose range is set by one outlier puts its typical weights in few levels, close
  to the noise floor; clipping spreads them over more levels.
- **Output range.** The activations are bounded by the input quantizers' calibrated ranges
  learned in QAT (with the noise in the forward), and each layer's ADC range is set after
  training by the crossbar simulation's calibration (``adc.calibration: mse``) on the
  noiseless arrays; noisy sums beyond it clip at the ADC's top code.

It combines with every regularizer (``regularizer.name: hamming`` or ``energy`` with
``analog.noise: true``): the regularizer sees the noiseless integer weights (what is
programmed), the loss sees the noisy forward.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import nn

from hamq.config_base import Section
from hamq.errors import HamqError
from hamq.hardware.crossbar import check_simulatable
from hamq.hardware.noise import check_time, read_weights
from hamq.hardware.spec import MAX_TIME_S, HardwareSpec
from hamq.quantization.convert import quantized_layers


class AnalogTrainConfig(Section):
    """Noise-aware training (``training/analog.py``).

    noise: inject the hardware's device noise into every QAT training forward.
    t_s: seconds after programming whose drift and read noise are drawn (default one day,
        the horizon of AnalogNets' 24 h result).
    scale: multiplier of the injected noise (1 = the device model's).
    clip_sigma: clip each output channel's float weights to this many standard deviations
        after every step (null: no clipping).
    """

    noise: bool = False
    t_s: float = Field(86400.0, ge=0, le=MAX_TIME_S)
    scale: float = Field(1.0, ge=0, le=100)
    clip_sigma: float | None = Field(None, gt=0, le=100)


class WeightNoise:
    """What a quantized layer adds to its fake-quantized weight in a training forward."""

    def __init__(self, hw: HardwareSpec, cfg: AnalogTrainConfig, seed: int) -> None:
        assert hw.device is not None
        self.hw, self.cfg, self.seed = hw, cfg, seed
        self.generators: dict[torch.device, torch.Generator] = {}
        self.epoch = 0

    def reseed(self, epoch: int) -> None:
        """Draw from the stream of ``epoch`` (resumes reproduce it)."""
        self.epoch = epoch
        self.generators.clear()

    def _generator(self, device: torch.device) -> torch.Generator:
        if device not in self.generators:
            gen = torch.Generator(device=device)
            gen.manual_seed((self.seed * 1_000_003 + self.epoch) * 7919 + 17)
            self.generators[device] = gen
        return self.generators[device]

    def __call__(self, codes: torch.Tensor, w_bits: int) -> torch.Tensor:
        """Noise in integer weight units for integer weights ``codes`` (no gradient)."""
        assert self.hw.device is not None
        with torch.no_grad():
            read = read_weights(codes, w_bits, self.hw.representation, self.hw.cell_bits,
                                self.hw.device, self.cfg.t_s, self._generator(codes.device),
                                self.hw.array.slice_levels == "spread",
                                self.hw.array.devices_per_cell)  # fmt: skip
            return ((read - codes) * self.cfg.scale).to(torch.float32)


def check_analog(cfg: AnalogTrainConfig, hw: HardwareSpec, w_bits: int) -> None:
    """Refuse noise-aware training the hardware cannot give (one line, the fix)."""
    if not cfg.noise:
        return
    problem = hw.device_problem()
    if problem is not None:
        raise HamqError(
            f"analog.noise = true but {problem}; set hardware.preset to one that has a "
            f"device section (pcm-14nm, rram-1b, rram-2b-40nm) or add one to its YAML"
        )
    try:
        check_simulatable(w_bits, hw.representation, hw.cell_bits)
        check_time(cfg.t_s)
    except ValueError as err:
        raise HamqError(f"analog.noise on hardware {hw.name}: {err}") from None


def attach(model: nn.Module, hw: HardwareSpec, cfg: AnalogTrainConfig, seed: int) -> None:
    """Give every quantized layer the weight noise of ``cfg`` (no-op unless cfg.noise)."""
    if not cfg.noise:
        return
    noise = WeightNoise(hw, cfg, seed)
    for _, layer in quantized_layers(model):
        layer.weight_noise = noise


def before_epoch(model: nn.Module, epoch: int) -> None:
    """Reseed the layers' noise for ``epoch``."""
    for _, layer in quantized_layers(model):
        noise: Any = getattr(layer, "weight_noise", None)
        if noise is not None:
            noise.reseed(epoch)
            return


def clip_weights(model: nn.Module, cfg: AnalogTrainConfig) -> None:
    """Clip every quantized layer's float weights per output channel to ``clip_sigma``
    standard deviations around 0 (in place; no-op without ``clip_sigma``)."""
    if cfg.clip_sigma is None:
        return
    with torch.no_grad():
        for _, layer in quantized_layers(model):
            w = layer.weight
            flat = w.reshape(w.shape[0], -1)
            if flat.shape[1] < 2:  # one weight per channel: no spread to clip to
                continue
            bound = cfg.clip_sigma * flat.std(dim=1, keepdim=True).clamp_min(1e-12)
            flat.clamp_(-bound, bound)


__all__ = [
    "AnalogTrainConfig",
    "WeightNoise",
    "attach",
    "before_epoch",
    "check_analog",
    "clip_weights",
]
