"""Typed configuration: schema and loading (`extends:` chains and dot-list overrides)."""

from vsr_lab.config.loading import flatten, load_config, to_yaml
from vsr_lab.config.schema import VSRConfig

__all__ = ["VSRConfig", "flatten", "load_config", "to_yaml"]
