"""The ``hamq`` command line (click). One module per command family."""
