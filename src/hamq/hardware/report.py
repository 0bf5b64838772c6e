"""The energy report: per-layer rows, totals, JSON and a printed table.

Totals use the HamQ paper's names: **E_cb** (crossbar cell energy) and **E_cb&AD** (crossbar
plus ADC, ``e_cb_ad_j``); all energies are joules per inference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from hamq.hardware.energy import tops_per_w


@dataclass(frozen=True)
class LayerEnergy:
    """One layer of the report, per inference.

    rows, cols: crossbar rows (K) and physical columns of one group block; groups: blocks;
    tiles: arrays allocated (groups x row tiles x column tiles); utilization: used cells /
    allocated cells; cells_on: cells at a non-zero level; on_fraction: cells_on / used
    cells; input_cycles: cycles per input vector; vectors: input vectors per inference;
    conversions: ADC conversions; cycles: array cycles; energies in joules.
    """

    name: str
    kind: str
    groups: int
    rows: int
    cols: int
    tiles: int
    row_tiles: int
    col_tiles: int
    utilization: float
    cells_on: int
    on_fraction: float
    input_cycles: int
    vectors: float
    macs: float
    conversions: float
    cycles: float
    latency_s: float
    e_cb_j: float
    e_adc_j: float
    e_periph_j: float

    @property
    def e_total_j(self) -> float:
        return self.e_cb_j + self.e_adc_j + self.e_periph_j

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["e_cb_ad_j"] = self.e_cb_j + self.e_adc_j
        d["e_total_j"] = self.e_total_j
        d["tops_per_w"] = tops_per_w(self.macs, self.e_total_j)
        return d


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
        keys = ("e_cb_j", "e_adc_j", "e_periph_j", "cycles", "latency_s", "macs", "conversions")
        t = {k: float(sum(getattr(layer, k) for layer in self.layers)) for k in keys}
        t["e_cb_ad_j"] = t["e_cb_j"] + t["e_adc_j"]
        t["e_total_j"] = t["e_cb_j"] + t["e_adc_j"] + t["e_periph_j"]
        t["tops_per_w"] = tops_per_w(t["macs"], t["e_total_j"])
        t["tiles"] = float(sum(layer.tiles for layer in self.layers))
        return t

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
            f"{'on':>6} {'E_cb uJ':>10} {'E_adc uJ':>10} {'E_cb&AD uJ':>11} "
            f"{'E_per uJ':>9} {'cycles':>10}"
        )
        lines = [head, "-" * len(head)]
        for r in self.layers:
            lines.append(
                f"{r.name[-24:]:<24} {r.rows:>5} {r.cols:>5} {r.groups:>4} {r.tiles:>5} "
                f"{r.utilization:>6.1%} {r.on_fraction:>6.1%} {r.e_cb_j * uj:>10.4g} "
                f"{r.e_adc_j * uj:>10.4g} {(r.e_cb_j + r.e_adc_j) * uj:>11.4g} "
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
            f"  E_cb     {t['e_cb_j'] * uj:.4g} uJ",
            f"  E_adc    {t['e_adc_j'] * uj:.4g} uJ",
            f"  E_cb&AD  {t['e_cb_ad_j'] * uj:.4g} uJ",
            f"  E_periph {t['e_periph_j'] * uj:.4g} uJ",
            f"  E_total  {t['e_total_j'] * uj:.4g} uJ",
            f"  cycles {t['cycles']:.4g}, latency {t['latency_s'] * 1e6:.4g} us, "
            f"MACs {t['macs']:.4g}, {t['tops_per_w']:.4g} TOPS/W, {int(t['tiles'])} tiles",
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format_table()
