"""What every command does first: find the plugins, then read and check the YAML."""

from __future__ import annotations

import argparse
import os

from sambung import redaction
from sambung.config import LoadedConfig, load_config
from sambung.plugins import Registry, allowed_plugins, load_plugins


def plugin_registry() -> Registry:
    """The installed plugins, narrowed to `SAMBUNG_PLUGINS` when it is set."""
    return load_plugins(allowed_plugins(os.environ.get("SAMBUNG_PLUGINS")))


def load(args: argparse.Namespace) -> tuple[Registry, LoadedConfig]:
    """The plugins and the config named by `-c`; its secrets are masked in all output from now."""
    registry = plugin_registry()
    loaded = load_config(args.config, registry)
    redaction.secrets.configure(loaded.secrets)
    return registry, loaded
