"""``hamq presets`` and ``hamq energy`` (filled in by the energy model work)."""
