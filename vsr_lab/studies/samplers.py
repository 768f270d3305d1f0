"""Optuna samplers (`sweep.sampler`, built from a seed) and pruners (`sweep.pruner`), registered
by name in `STUDY_SAMPLERS` / `STUDY_PRUNERS`."""

from __future__ import annotations

import optuna

from vsr_lab.registry import STUDY_PRUNERS, STUDY_SAMPLERS

# TPE with the constant liar, so parallel workers do not all sample next to the same best trial.
STUDY_SAMPLERS.register("tpe")(lambda seed: optuna.samplers.TPESampler(seed=seed, constant_liar=True))
STUDY_SAMPLERS.register("random")(lambda seed: optuna.samplers.RandomSampler(seed=seed))
STUDY_SAMPLERS.register("nsga2")(lambda seed: optuna.samplers.NSGAIISampler(seed=seed))
STUDY_SAMPLERS.register("qmc")(lambda seed: optuna.samplers.QMCSampler(seed=seed))

STUDY_PRUNERS.register("median")(optuna.pruners.MedianPruner)
STUDY_PRUNERS.register("hyperband")(optuna.pruners.HyperbandPruner)
STUDY_PRUNERS.register("none")(optuna.pruners.NopPruner)
