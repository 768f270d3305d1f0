"""Ablations over seeds, Optuna studies, and comparison tables/plots read back from MLflow."""
