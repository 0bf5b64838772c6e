"""``quantize_model``: convert every Conv2d/Linear of any ``nn.Module``, and say what it did."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from hamq.errors import HamqError, closest
from hamq.quantization.config import QuantConfig
from hamq.quantization.modules import QuantConv2d, QuantLayer, QuantLinear


@dataclass
class ConversionReport:
    """What :func:`quantize_model` converted, and what it left in float and why."""

    converted: list[tuple[str, str]] = field(default_factory=list)  # (name, description)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    #: layers that were quantized before the call, kept as they are: (name, description)
    already_quantized: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"converted {len(self.converted)} layer(s):"]
        lines += [f"  {n}: {d}" for n, d in self.converted]
        if self.already_quantized:
            lines.append(f"already quantized, kept as is: {len(self.already_quantized)} layer(s):")
            lines += [f"  {n}: {d}" for n, d in self.already_quantized]
        if self.skipped:
            lines.append(f"kept in float {len(self.skipped)} module(s):")
            lines += [f"  {n}: {r}" for n, r in self.skipped]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, list[dict[str, str]]]:
        out = {
            "converted": [{"name": n, "layer": d} for n, d in self.converted],
            "skipped": [{"name": n, "reason": r} for n, r in self.skipped],
        }
        if self.already_quantized:
            out["already_quantized"] = [{"name": n, "layer": d} for n, d in self.already_quantized]
        return out


def quantize_model(model: nn.Module, cfg: QuantConfig) -> ConversionReport:
    """Replace, in place, each ``nn.Conv2d`` / ``nn.Linear`` by its quantized version.

    Layers named in ``cfg.skip`` stay in float; other modules with parameters (batch norm,
    embeddings) are digital and stay in float. Both are listed in the returned report, and
    so are layers that were already quantized (kept as they are, with their own bits).
    Raises :class:`HamqError` if a ``skip`` name is not a module of the model.
    """
    names = {n for n, _ in model.named_modules()}
    for s in cfg.skip:
        if s not in names:
            raise HamqError(
                f"quant.skip names '{s}', which is not a module of the model{closest(s, names)}"
            )
    report = ConversionReport()
    inside: list[str] = []  # quantized layers found, whose own submodules are not reported
    for name, module in list(model.named_modules()):
        if any(name.startswith(f"{q}.") for q in inside):
            continue
        if isinstance(module, QuantConv2d | QuantLinear):
            bits = f"w{module.w_bits}a{module.input_quant.bits}"
            report.already_quantized.append((name, f"{type(module).__name__} {bits}"))
            inside.append(name)
            continue
        if isinstance(module, nn.Conv2d | nn.Linear):
            if name in cfg.skip:
                report.skipped.append((name, "listed in quant.skip"))
                continue
            if isinstance(module, nn.Conv2d):
                if module.padding_mode != "zeros":
                    report.skipped.append((name, f"padding_mode {module.padding_mode}"))
                    continue
                new: nn.Module = QuantConv2d.from_float(module, cfg)
                desc = (
                    f"Conv2d {module.in_channels}->{module.out_channels} "
                    f"k={tuple(module.kernel_size)} groups={module.groups}"
                )
            else:
                new = QuantLinear.from_float(module, cfg)
                desc = f"Linear {module.in_features}->{module.out_features}"
            _set_submodule(model, name, new)
            report.converted.append((name, f"{desc} w{cfg.w_bits}a{cfg.a_bits}"))
        elif isinstance(module, nn.Conv1d | nn.Conv3d | nn.ConvTranspose2d):
            report.skipped.append((name, f"{type(module).__name__} is not supported"))
        elif any(True for _ in module.parameters(recurse=False)):
            report.skipped.append((name, f"{type(module).__name__}: digital, kept in float"))
    return report


def quantized_layers(model: nn.Module) -> list[tuple[str, QuantLayer]]:
    """The quantized layers of a converted model, in module order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, QuantConv2d | QuantLinear)]


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)
