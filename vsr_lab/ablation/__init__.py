"""The ablation runner (every config x seed as MLflow child runs) and the comparison tables and plots."""
