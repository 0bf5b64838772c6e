"""Hardware descriptions: validation errors name the field, the value and what is allowed."""

from __future__ import annotations

import pytest
import torch

from hamq.errors import HamqError
from hamq.hardware.mapping import map_layer
from hamq.hardware.spec import load_hardware
from hamq.quantization.export import IntegerLayer


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ({"array.rows": 0}, r"array\.rows = 0: .*greater than 0"),
        ({"array.cols": -4}, r"array\.cols = -4"),
        ({"array.cell_bits": 3}, r"array\.cell_bits = 3: must be one of 1, 2, 4"),
        ({"tech.e_cell_pj": [0.1, -0.2]}, r"tech\.e_cell_pj\[1\] = -0\.2: .*negative"),
        ({"tech.e_adc_pj": -1.0}, r"tech\.e_adc_pj = -1\.0"),
        ({"tech.e_driver_pj": -0.5}, r"tech\.e_driver_pj = -0\.5"),
        ({"tech.e_cell_pj": [0.1, 0.2, 0.3]}, r"tech\.e_cell_pj has 3 entries"),
        ({"array.representation": "ones"}, r"array\.representation = 'ones': must be one of"),
        ({"adc.col_mux": 129}, r"adc\.col_mux = 129 exceeds array\.cols = 128"),
        ({"array.rowz": 4}, r"unknown key 'array\.rowz' \(did you mean 'rows'\?\)"),
    ],
)
def test_bad_descriptions_name_the_field(override: dict, pattern: str) -> None:
    with pytest.raises(HamqError, match=pattern) as exc:
        load_hardware("rram-1b", **override)
    assert "\n" not in str(exc.value)


def test_unknown_preset_lists_allowed() -> None:
    with pytest.raises(HamqError, match=r"unknown hardware preset 'pcm-14' .*allowed: pcm-14nm"):
        load_hardware("pcm-14")


def test_user_file_and_overrides(tmp_path) -> None:
    f = tmp_path / "hw.yaml"
    f.write_text(
        "name: mine\nsource: test\narray: {rows: 32, cols: 32, cell_bits: 1}\n"
        "tech: {e_cell_pj: [0, 1], e_adc_pj: 1.0, e_adc_ref_bits: 6}\n"
    )
    hw = load_hardware(f, **{"adc.bits": 8})
    assert hw.name == "mine" and hw.array.rows == 32
    assert hw.e_adc_pj_at() == pytest.approx(4.0)  # 1 pJ at 6 bits, 2x per bit
    with pytest.raises(HamqError, match=r"not valid YAML|must hold a YAML mapping"):
        f.write_text("- a\n- b\n")
        load_hardware(f)


def layer(w_bits: int) -> IntegerLayer:
    w = torch.zeros(2, 3, dtype=torch.int64)
    return IntegerLayer("fc1", "linear", w, torch.ones(2), w_bits, 8, False, 1.0, None)


@pytest.mark.parametrize("rep", ["twos_complement", "sign_magnitude"])
def test_cell_bits_must_divide_weight_bits_where_required(rep: str) -> None:
    hw = load_hardware("rram-2b-40nm", **{"array.representation": rep})
    with pytest.raises(HamqError, match=r"array\.cell_bits = 2 .*layer 'fc1'"):
        map_layer(layer(5), hw)
    assert map_layer(layer(6), hw).cells_per_weight == 3


@pytest.mark.parametrize("rep", ["differential", "shifted"])
def test_other_representations_accept_a_partial_top_slice(rep: str) -> None:
    hw = load_hardware("rram-2b-40nm", **{"array.representation": rep})
    # differential: 4 magnitude bits -> 2 slices x 2 sets; shifted: 5 bits -> 3 slices
    assert map_layer(layer(5), hw).cells_per_weight == (4 if rep == "differential" else 3)
