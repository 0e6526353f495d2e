"""Probe configuration: YAML files validated once, at load, with file:line errors."""

from probes.config.loader import ConfigError, LoadedConfig, load_config, load_config_text

__all__ = ["ConfigError", "LoadedConfig", "load_config", "load_config_text"]
