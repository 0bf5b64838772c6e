"""Golden, hand-worked cell statistics (property tests against brute force live in
test_representation.py)."""

from __future__ import annotations

import pytest
import torch

from hamq.hardware.stats import CellStats, cell_stats

pytestmark = pytest.mark.usefixtures("single_thread")

Q = torch.tensor([5, -3, 0])


def test_differential_two_bit_cells_by_hand() -> None:
    # 4-bit weights, differential: 3-bit magnitude words, 2 slices of 2 bits, 2 column sets.
    #   5 -> (101, 000): levels (01, 1) (0, 0)  -> [[1, 1], [0, 0]], HW 2
    #  -3 -> (000, 011): levels (0, 0) (11, 0)  -> [[0, 0], [3, 0]], HW 2
    #   0 -> all zero                                              HW 0
    s = cell_stats(Q, 4, "differential", 2)
    assert s == CellStats(
        cells_on=3,
        cells_total=3 * 2 * 2,
        level_counts=[9, 2, 0, 1],
        hw_hist=[1, 0, 2, 0, 0, 0, 0, 0, 0],
        hamming_weight=4,
    )


def test_shifted_two_bit_cells_by_hand() -> None:
    # 4-bit shifted: q + 8 in 4 bits, 2 slices, LSB first.
    #   5 -> 13 = 11|01 -> [1, 3], HW 3
    #  -3 ->  5 = 01|01 -> [1, 1], HW 2
    #   0 ->  8 = 10|00 -> [0, 2], HW 1
    s = cell_stats(Q, 4, "shifted", 2)
    assert s.cells_total == 6
    assert s.cells_on == 5
    assert s.level_counts == [1, 3, 1, 1]
    assert s.hw_hist == [0, 1, 1, 1, 0, 0, 0, 0, 0]
    assert s.hamming_weight == 6


def test_twos_complement_four_bit_cells_by_hand() -> None:
    # 4-bit two's complement in one 4-bit cell: 5 -> 0101, -3 -> 1101 = 13, 0 -> 0.
    s = cell_stats(Q, 4, "twos_complement", 4)
    assert s.cells_total == 3
    assert s.cells_on == 2
    assert s.level_counts == [1] + [0] * 4 + [1] + [0] * 7 + [1] + [0] * 2
    assert s.hamming_weight == 2 + 3


def test_sign_magnitude_one_bit_cells_by_hand() -> None:
    # 8-bit sign-magnitude: -127 -> 1111_1111 (8 ON cells), 64 -> 0100_0000 (1), -0 = 0.
    s = cell_stats(torch.tensor([-127, 64, 0]), 8, "sign_magnitude", 1)
    assert (s.cells_on, s.cells_total, s.hamming_weight) == (9, 24, 9)
    assert s.level_counts == [15, 9]
    assert s.hw_hist[8] == 1 and s.hw_hist[1] == 1 and s.hw_hist[0] == 1


def test_to_dict_is_plain() -> None:
    d = cell_stats(Q, 4, "shifted", 2).to_dict()
    assert d == {
        "cells_on": 5,
        "cells_total": 6,
        "level_counts": [1, 3, 1, 1],
        "hw_hist": [0, 1, 1, 1, 0, 0, 0, 0, 0],
        "hamming_weight": 6,
    }
