"""Training: the run config, the QAT loop, checkpoints and run records."""
