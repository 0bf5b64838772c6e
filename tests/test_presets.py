"""The shipped presets: they load, cite a source, and hold the published numbers."""

from __future__ import annotations

import pytest

from hamq.hardware.spec import load_hardware, preset_names


def test_expected_presets_ship() -> None:
    assert {"rram-1b", "rram-2b-40nm", "pcm-14nm", "sram-acim"} <= set(preset_names())


@pytest.mark.parametrize("name", preset_names())
def test_preset_is_valid_and_cited(name: str) -> None:
    hw = load_hardware(name)
    assert hw.name == name
    assert len(hw.source) > 40
    assert len(hw.tech.e_cell_pj) == 2**hw.cell_bits
    assert list(hw.tech.e_cell_pj) == sorted(hw.tech.e_cell_pj)  # ON costs more than OFF


def test_rram_2b_40nm_numbers() -> None:
    """The 40 nm 2-bit/cell macro of the design brief: 0.079/0.36/0.73/1.49 pJ for states
    00/01/10/11 and 0.208 pJ per ADC conversion."""
    hw = load_hardware("rram-2b-40nm")
    assert hw.cell_bits == 2
    assert hw.tech.e_cell_pj == (0.079, 0.36, 0.73, 1.49)
    assert hw.e_adc_pj_at() == pytest.approx(0.208)


def test_rram_2b_40nm_cites_the_twofold_and_lgps_venues() -> None:
    """Twofold Sparsity is IEEE Access 2024; only their LFSR pruning paper (LGPS) is TCAS-I."""
    source = " ".join(load_hardware("rram-2b-40nm").source.split())
    assert "Karimzadeh & Raychowdhury, Twofold Sparsity" in source
    assert "IEEE Access 2024" in source
    assert "LGPS, IEEE TCAS-I 68, 2021" in source
    assert source.count("TCAS-I") == 1
