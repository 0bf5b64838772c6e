"""The energy report: per-layer rows, totals, JSON and a printed table.

A row is the :class:`~hamq.hardware.energy.LayerEnergy` that ``energy.layer_cost`` returns
(re-exported here); the report only sums and formats rows. Totals use the HamQ paper's
names: **E_cb** (crossbar cell energy) and **E_cb&AD** (crossbar plus ADC, ``e_cb_ad_j``);
all energies are joules per inference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hamq.hardware.energy import LayerEnergy, tops_per_w


@dataclass(frozen=True)
class EnergyReport:
    """Energy, time and mapping of a model on a hardware description.

    mode: ``data`` (measured from the inputs of ``samples`` inferences) or ``static``
    (``activity`` = assumed probability that an input magnitude bit is 1).
    """

    hardware: str
    mode: str
    samples: int
    layers: list[LayerEnergy]
    activity: float | None = None

    def totals(self) -> dict[str, float]:
        """Sums over layers (latency too: layers run one after another)."""
        keys = (
            "e_cb_j",
            "e_cb_floor_j",
            "e_adc_j",
            "e_periph_j",
            "cycles",
            "latency_s",
            "macs",
            "conversions",
        )
        t = {k: float(sum(getattr(layer, k) for layer in self.layers)) for k in keys}
        t["e_cb_ad_j"] = t["e_cb_j"] + t["e_adc_j"]
        t["e_total_j"] = t["e_cb_j"] + t["e_adc_j"] + t["e_periph_j"]
        t["tops_per_w"] = tops_per_w(t["macs"], t["e_total_j"])
        t["tiles"] = float(sum(layer.tiles for layer in self.layers))
        t["mapped_cols"] = float(sum(layer.mapped_cols for layer in self.layers))
        for k in ("dense_tiles", "dense_cells", "csr_index_bits", "lfsr_clocks", "e_lfsr_j"):
            t[k] = float(sum(getattr(layer, k) for layer in self.layers))
        t["cells"] = float(sum(layer_cells(layer) for layer in self.layers))
        return t

    def index_free_lines(self) -> list[str]:
        """The index-free layout's table (row-pruned layers), empty when there is none:
        rows, arrays and cells stored against the dense layout, and the index memory a
        CSR-style layout would add, which the LFSR replaces."""
        rows = [r for r in self.layers if r.dense_rows != r.rows]
        if not rows:
            return []
        head = (
            f"{'index-free layer':<24} {'rows':>11} {'arrays':>9} {'cells':>17} "
            f"{'CSR idx kbit':>12} {'LFSR clk/inf':>12}"
        )
        lines = [head, "-" * len(head)]
        for r in rows:
            lines.append(
                f"{r.name[-24:]:<24} {r.rows:>5}/{r.dense_rows:<5} {r.tiles:>4}/{r.dense_tiles:<4} "
                f"{layer_cells(r):>8}/{r.dense_cells:<8} {r.csr_index_bits / 1e3:>12.3g} "
                f"{r.lfsr_clocks:>12.4g}"
            )
        t = self.totals()
        lines.append(
            f"all layers: {int(t['tiles'])} arrays (dense layout {int(t['dense_tiles'])}), "
            f"{int(t['cells'])} cells (dense {int(t['dense_cells'])}); a CSR-style layout of "
            f"the same rows adds {t['csr_index_bits'] / 1e3:.3g} kbit of row indices, the "
            f"LFSR none ({t['e_lfsr_j'] * 1e6:.3g} uJ per inference, in E_periph)"
        )
        return lines

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``hamq energy --json``."""
        return {
            "hardware": self.hardware,
            "mode": self.mode,
            "samples": self.samples,
            "activity": self.activity,
            "totals": self.totals(),
            "layers": [layer.to_dict() for layer in self.layers],
        }

    def format_table(self) -> str:
        """Per-layer table and totals, energies in microjoules per inference."""
        uj = 1e6
        head = (
            f"{'layer':<24} {'rows':>5} {'cols':>5} {'grp':>4} {'tiles':>5} {'util':>6} "
            f"{'on':>6} {'in':>4} {'adc':>3} {'E_cb uJ':>10} {'E_adc uJ':>10} {'E_cb&AD uJ':>11} "
            f"{'E_per uJ':>9} {'cycles':>10}"
        )
        lines = [head, "-" * len(head)]
        for r in self.layers:
            lines.append(
                f"{r.name[-24:]:<24} {r.rows:>5} {r.cols:>5} {r.groups:>4} {r.tiles:>5} "
                f"{r.utilization:>6.1%} {r.on_fraction:>6.1%} {r.row_activity_mean:>4.2f} "
                f"{r.adc_bits:>3} "
                f"{r.e_cb_j * uj:>10.4g} {r.e_adc_j * uj:>10.4g} "
                f"{(r.e_cb_j + r.e_adc_j) * uj:>11.4g} "
                f"{r.e_periph_j * uj:>9.3g} {r.cycles:>10.4g}"
            )
        t = self.totals()
        lines.append("-" * len(head))
        how = (
            f"measured on {self.samples} sample(s)"
            if self.mode == "data"
            else f"static, input bit activity {self.activity}"
        )
        lines += [
            f"hardware {self.hardware}; mode {self.mode} ({how}); per inference:",
            f"  E_cb     {t['e_cb_j'] * uj:.4g} uJ (floor {t['e_cb_floor_j'] * uj:.4g} uJ: every "
            f"cell at its cheapest state, the least any weights draw from these inputs)",
            f"  E_adc    {t['e_adc_j'] * uj:.4g} uJ",
            f"  E_cb&AD  {t['e_cb_ad_j'] * uj:.4g} uJ",
            f"  E_periph {t['e_periph_j'] * uj:.4g} uJ",
            f"  E_total  {t['e_total_j'] * uj:.4g} uJ",
            f"  cycles {t['cycles']:.4g}, latency {t['latency_s'] * 1e6:.4g} us, "
            f"MACs {t['macs']:.4g}, {t['tops_per_w']:.4g} TOPS/W, {int(t['tiles'])} tiles "
            f"({int(t['mapped_cols'])} columns mapped); 'adc': each layer's ADC bits; "
            f"'in': the 1 bits a stored row reads per input vector (row_activity_mean)",
        ]
        index_free = self.index_free_lines()
        if index_free:
            lines += ["", *index_free]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format_table()


def layer_cells(layer: LayerEnergy) -> int:
    """Used cells of a layer's layout: ``groups x rows x cols``."""
    return layer.groups * layer.rows * layer.cols


__all__ = ["EnergyReport", "LayerEnergy", "layer_cells"]
