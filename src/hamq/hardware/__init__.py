"""Crossbar hardware: number representations, cell statistics, mapping and energy."""
