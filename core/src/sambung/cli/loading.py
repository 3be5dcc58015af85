"""What every command does first: find the plugins, then read and check the YAML."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from sambung import redaction
from sambung.config import LoadedConfig, load_config
from sambung.plugins import Registry, allowed_plugins, load_plugins

CONFIG_ENV = "SAMBUNG_CONFIG"
Handler = Callable[[argparse.Namespace], int]


def plugin_registry() -> Registry:
    """The installed plugins, narrowed to `SAMBUNG_PLUGINS` when it is set."""
    return load_plugins(allowed_plugins(os.environ.get("SAMBUNG_PLUGINS")))


def load(args: argparse.Namespace) -> tuple[Registry, LoadedConfig]:
    """The plugins and the config named by `-c`; its secrets are masked in all output from now.
    A command declared `need_env=False` loads it without the `${ENV}` values it never uses."""
    registry = plugin_registry()
    loaded = load_config(args.config, registry, need_env=getattr(args, "need_env", True))
    redaction.secrets.configure(loaded.secrets)
    return registry, loaded


class UsageError(Exception):
    """A command line that names what the config has not (an outlet): exit status 2."""


def check_outlet(loaded: LoadedConfig, outlet: str | None) -> None:
    """Refuse an `--outlet` the config does not define, naming those it does."""
    known = [o.id for o in loaded.config.outlets]
    if outlet is not None and outlet not in known:
        raise UsageError(
            f"no outlet {outlet!r} in {loaded.path} (configured: {', '.join(known) or 'none'})"
        )


def default_config() -> Path:
    """The YAML a command reads without `-c`: `$SAMBUNG_CONFIG`, else ./sambung.yaml."""
    return Path(os.environ.get(CONFIG_ENV) or "sambung.yaml")


def add_config_option(parser: argparse.ArgumentParser, *, inherited: bool = False) -> None:
    """`-c/--config FILE`. An action under a command that takes it already (`dlq list`) takes it
    `inherited`: given in either place it counts, and the action's absent one changes nothing."""
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        metavar="FILE",
        default=argparse.SUPPRESS if inherited else default_config(),
        help=f"the YAML file (default: ${CONFIG_ENV}, else ./sambung.yaml)",
    )


class Commands:
    """How every `sambung` command and action is declared, so each takes `-c FILE` alike."""

    def __init__(self, subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
        self._subparsers = subparsers

    def add(
        self, name: str, help: str, handler: Handler, *, config: bool = True, need_env: bool = True
    ) -> argparse.ArgumentParser:
        """A command: `sambung NAME [-c FILE] …`, run by `handler(args)`. One that only reads
        the store, and so never needs a vendor's secret, is declared `need_env=False`."""
        sub: argparse.ArgumentParser = self._subparsers.add_parser(
            name, help=help, description=help
        )
        sub.set_defaults(handler=handler, command=name, need_env=need_env)
        if config:
            add_config_option(sub)
        return sub

    @staticmethod
    def actions(command: argparse.ArgumentParser) -> Actions:
        """The actions of a command (`dlq list`, `credentials list`), one required."""
        return Actions(
            command.add_subparsers(title="actions", metavar="ACTION", dest="action", required=True)
        )


class Actions:
    """The actions under one command; each takes `-c FILE` after its name too."""

    def __init__(self, subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
        self._subparsers = subparsers

    def add(self, name: str, help: str, *, need_env: bool = True) -> argparse.ArgumentParser:
        """An action: `sambung COMMAND NAME [-c FILE] …`, run by its command's handler;
        `need_env` as for a command."""
        sub: argparse.ArgumentParser = self._subparsers.add_parser(name, help=help)
        sub.set_defaults(need_env=need_env)
        add_config_option(sub, inherited=True)
        return sub
