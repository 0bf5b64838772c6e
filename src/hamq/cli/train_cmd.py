"""``hamq train``, ``hamq eval``, ``hamq demo``."""
