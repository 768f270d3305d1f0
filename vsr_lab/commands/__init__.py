"""One module per subcommand of `python -m vsr_lab` (vsr_lab/cli.py lists them).

Each module has `add_parser(sub)`, which declares the command's arguments and sets `run` as its
function, and `run(args) -> int`, which does the work. A module imports only the standard library
and light parts of vsr_lab at the top; torch, Lightning, diffusers, MLflow, Optuna and pyiqa load
inside `run`, after the arguments, paths and config have been checked, so a usage error or a
missing file answers at once (tests/test_registry.py checks the imports of `--help` and of a config
load in a fresh interpreter).
"""
