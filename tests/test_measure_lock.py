"""One process (or thread) at a time measures a run folder: two parallel sweep lanes that
both find a run finished but unmeasured measure it once, and the second reads the cache."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import hamq.hardware.estimate as estimate
from hamq.experiments.sweep import MEASURE_LOCK, measure_energy, measuring


def test_two_measurements_of_one_run_compute_it_once(
    run_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real = estimate.estimate_energy

    def slow(*args, **kwargs):
        calls.append(threading.current_thread().name)
        time.sleep(0.5)  # both lanes look for the cache while the first one computes
        return real(*args, **kwargs)

    monkeypatch.setattr(estimate, "estimate_energy", slow)
    results: dict[str, dict] = {}

    def lane(name: str) -> None:
        results[name] = measure_energy(run_copy, "rram-2b-40nm", 20)

    threads = [threading.Thread(target=lane, args=(n,), name=n) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert results["a"]["totals"] == results["b"]["totals"]
    assert (run_copy / MEASURE_LOCK).exists() and (run_copy / "energy.json").exists()


def test_a_held_lock_makes_the_measurement_wait(run_copy: Path) -> None:
    done = threading.Event()

    def lane() -> None:
        measure_energy(run_copy, "rram-2b-40nm", 20)
        done.set()

    with measuring(run_copy):
        worker = threading.Thread(target=lane)
        worker.start()
        assert not done.wait(1.0)  # blocked on the lock, not measuring
        assert not (run_copy / "energy.json").exists()
    worker.join(timeout=120)
    assert done.is_set() and (run_copy / "energy.json").exists()
