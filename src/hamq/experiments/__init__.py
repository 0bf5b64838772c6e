"""Experiments: sweeps of runs (lambda, bits, representation), results tables, reports."""
