"""Tables and plots of runs read back from MLflow, shared by `ablate`, `sweep`, `prune-study` and
`compare`: the comparison against a reference config, seed spreads, Pareto fronts."""
