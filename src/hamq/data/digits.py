"""The embedded default: scikit-learn's handwritten digits (1,797 8x8 images, 10 classes).

It ships inside scikit-learn (no download). Split: stratified 80/20 with a fixed seed, so
every machine trains and tests on the same images. Pixels 0..16 are scaled to [0, 1].
"""

from __future__ import annotations

import torch

from hamq.data.bundle import DataBundle

SPLIT_SEED = 0
TEST_FRACTION = 0.2


def load_digits_bundle() -> DataBundle:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    ds = load_digits()
    x = torch.tensor(ds.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
    y = torch.tensor(ds.target, dtype=torch.int64)
    idx_train, idx_test = train_test_split(
        list(range(len(y))), test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=ds.target
    )
    return DataBundle(
        name="digits",
        train_x=x[idx_train],
        train_y=y[idx_train],
        test_x=x[idx_test],
        test_y=y[idx_test],
        classes=[str(i) for i in range(10)],
        input_shape=(1, 8, 8),
    )
