"""Optuna studies over a config's `sweep:` search space, one MLflow child run per trial."""
