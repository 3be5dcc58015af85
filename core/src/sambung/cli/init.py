"""`sambung init`: write a first config for a merchant, and the env file its secrets go in.

The outlets, their time zones and their connectors come from flags or from questions on
stdin. Every secret (and every vendor value only the merchant knows) becomes a `${NAME}`
placeholder, listed with a comment in the env file, so the YAML itself holds nothing secret.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sambung.connectors import Mode
from sambung.plugins import Registry

from .loading import Commands, plugin_registry

EXIT_USAGE = 2
# Indonesia's three civil time zones, by the abbreviations merchants use.
ZONES = {"WIB": "Asia/Jakarta", "WITA": "Asia/Makassar", "WIT": "Asia/Jayapura"}
OUTLET_ID = re.compile(r"^[a-z0-9-]{1,64}$")
ADMIN_TOKEN = "SAMBUNG_ADMIN_TOKEN"


class InitError(Exception):
    """An answer or flag `init` cannot use; the message says which and why."""


@dataclass(frozen=True)
class Variable:
    """One environment variable the written config reads."""

    name: str
    comment: str
    secret: bool
    value: str = ""


@dataclass
class ConnectorChoice:
    """A connector at an outlet, in the modes chosen."""

    name: str
    modes: tuple[Mode, ...]


@dataclass
class OutletChoice:
    """An outlet: its id, IANA time zone and connectors."""

    id: str
    timezone: str
    connectors: list[ConnectorChoice] = field(default_factory=list)


# -- parsing answers (pure) ------------------------------------------------------------------


def parse_zone(text: str) -> str:
    """WIB, WITA, WIT or an IANA name, as the IANA name."""
    zone = ZONES.get(text.strip().upper(), text.strip())
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InitError(
            f"unknown time zone {text!r}: use WIB, WITA, WIT or an IANA name such as Asia/Jakarta"
        ) from None
    return zone


def parse_outlet_id(text: str) -> str:
    """A valid outlet id (lower-case letters, digits and dashes)."""
    if not OUTLET_ID.match(text):
        raise InitError(f"outlet id {text!r}: use lower-case letters, digits and dashes")
    return text


def parse_modes(text: str, name: str, registry: Registry) -> tuple[Mode, ...]:
    """`webhook`, `poll,webhook` or `webhook+poll` for connector `name`; empty: its default."""
    supported = registry.connectors[name].modes
    if not text.strip():
        return (default_mode(supported),)
    modes: list[Mode] = []
    for part in re.split(r"[,+ ]+", text.strip()):
        try:
            mode = Mode(part)
        except ValueError:
            raise InitError(f"{name}: unknown mode {part!r}") from None
        if mode not in supported:
            raise InitError(f"{name} does not support {part} (it does {_names(supported)})")
        if mode not in modes:
            modes.append(mode)
    return tuple(modes)


def default_mode(supported: frozenset[Mode]) -> Mode:
    """Webhook where the vendor pushes, else poll, else file-drop."""
    for mode in (Mode.WEBHOOK, Mode.POLL, Mode.FILE_DROP):
        if mode in supported:
            return mode
    return next(iter(supported))


def parse_outlet_flag(text: str) -> OutletChoice:
    """`--outlet ID:TIMEZONE` (the zone defaults to WIB)."""
    outlet, _, zone = text.partition(":")
    return OutletChoice(parse_outlet_id(outlet), parse_zone(zone or "WIB"))


def parse_connector_flag(
    text: str, outlets: dict[str, OutletChoice], registry: Registry
) -> tuple[str, ConnectorChoice]:
    """`--connector OUTLET:NAME[:MODE]` as (outlet id, choice)."""
    outlet, _, rest = text.partition(":")
    name, _, modes = rest.partition(":")
    if outlet not in outlets:
        raise InitError(f"--connector {text}: no --outlet {outlet!r} given")
    return outlet, ConnectorChoice(
        check_connector(name, registry), parse_modes(modes, name, registry)
    )


def check_connector(name: str, registry: Registry) -> str:
    """An installed connector's name."""
    if name not in registry.connectors:
        installed = ", ".join(sorted(registry.connectors))
        raise InitError(f"no connector {name!r} is installed (installed: {installed})")
    return name


def _names(modes: frozenset[Mode] | tuple[Mode, ...]) -> str:
    return ", ".join(sorted(m.value for m in modes))


# -- rendering (pure) ------------------------------------------------------------------------


def env_name(outlet: str, connector: str, setting: str) -> str:
    """KEMANG_PAWOON_WEBHOOK_SECRET."""
    return re.sub(r"[^A-Z0-9]+", "_", f"{outlet}_{connector}_{setting}".upper())


def connector_fields(name: str, modes: tuple[Mode, ...], registry: Registry) -> list[str]:
    """The settings this connector needs in these modes, in declaration order."""
    connector = registry.connectors[name]
    settings = connector.Settings
    needed = {n for n, f in settings.model_fields.items() if f.is_required()} - {"mode"}
    for mode, names in getattr(settings, "required_in_mode", {}).items():
        if mode in modes:
            needed |= set(names)
    if getattr(connector, "oauth", None) is not None and Mode.POLL in modes:
        needed |= {"client_id", "client_secret"} & set(settings.model_fields)
    return [n for n in settings.model_fields if n in needed]


def is_secret(name: str, setting: str, registry: Registry) -> bool:
    """Whether the setting is typed as a secret (SecretStr, or a list of them)."""
    annotation = registry.connectors[name].Settings.model_fields[setting].annotation
    return "SecretStr" in str(annotation)


def render(
    outlets: list[OutletChoice], registry: Registry, *, config_name: str, env_file: str
) -> tuple[str, list[Variable]]:
    """The YAML text and the variables it reads."""
    variables = [
        Variable(
            ADMIN_TOKEN,
            "Bearer token of the admin listener (127.0.0.1:8081), at least 16 characters;"
            " generated by sambung init",
            secret=True,
            value=secrets.token_urlsafe(24),
        )
    ]
    written = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# sambung configuration, written by `sambung init` on {written}.",
        "#",
        "# Secrets are ${NAME} placeholders filled from the environment; every one is listed",
        f"# with what it is in {env_file} (mode 0600). Fill that in, then check this file:",
        f"#   set -a; . ./{env_file}; set +a",
        f"#   sambung check -c {config_name}",
        "# Every option is explained in config.example.yaml in the sambung repository.",
        "",
        "store:",
        '  url: "sqlite:///./data/sambung.db"   # or postgresql://USER@HOST/DB for replicas',
        "",
        "server:",
        "  public:                      # vendors' webhooks arrive here",
        "    host: 0.0.0.0",
        "    port: 8080",
        '    # base_url: "https://sambung.example.id"   # how vendors reach it, if not this host',
        "  admin:                       # status, metrics, dead letters, CSV upload",
        "    host: 127.0.0.1",
        "    port: 8081",
        f'    token: "${{{ADMIN_TOKEN}}}"',
        "",
        "outlets:",
    ]
    for outlet in outlets:
        zone = next((abbr for abbr, iana in ZONES.items() if iana == outlet.timezone), "")
        lines += [
            f"  - id: {outlet.id}",
            f"    {'name: ' + outlet.id:<26}# shown in logs and status; rename freely",
            (f"    {'timezone: ' + outlet.timezone:<26}" + (f"# {zone}" if zone else "")).rstrip(),
        ]
        if not outlet.connectors:
            lines.append(f"    {'connectors: {}':<26}# none yet: see `sambung plugins`")
            continue
        lines.append("    connectors:")
        for choice in outlet.connectors:
            lines += _render_connector(outlet.id, choice, registry, variables, config_name)
    lines += [
        "",
        "# No sinks yet: records are stored and nothing is delivered onward. See `sinks:` in",
        "# config.example.yaml for http, jsonl, nats, accurate and jurnal.",
        "",
    ]
    return "\n".join(lines), variables


def _render_connector(
    outlet: str,
    choice: ConnectorChoice,
    registry: Registry,
    variables: list[Variable],
    config_name: str,
) -> list[str]:
    modes = [m.value for m in choice.modes]
    shown = modes[0] if len(modes) == 1 else f"[{', '.join(modes)}]"
    lines = [f"      {choice.name}:", f"        mode: {shown}"]
    connector = registry.connectors[choice.name]
    if getattr(connector, "oauth", None) is not None and Mode.POLL in choice.modes:
        lines.append(
            f"        # OAuth: run `sambung connect -c {config_name} {outlet} {choice.name}`"
            " and open the link"
        )
    if Mode.FILE_DROP in choice.modes:
        lines.append(
            f"        # exports dropped into data/inbox/{outlet}/{choice.name}/ are imported"
        )
    for setting in connector_fields(choice.name, choice.modes, registry):
        secret = is_secret(choice.name, setting, registry)
        name = env_name(outlet, choice.name, setting)
        kind = "secret" if secret else "not secret: may be written into the YAML instead"
        variables.append(
            Variable(name, f"{choice.name} {setting} of outlet {outlet} ({kind})", secret)
        )
        lines.append(f'        {setting}: "${{{name}}}"')
    return lines


def render_env(variables: list[Variable], config_name: str) -> str:
    """The env file: one commented `NAME=value` per variable, empty where the merchant fills in."""
    lines = [
        f"# Environment for {config_name}, written by `sambung init`. Keep it mode 0600.",
        "# Fill in every empty value; systemd reads it as an EnvironmentFile, a shell with",
        "#   set -a; . ./sambung.env; set +a",
        "",
    ]
    for variable in variables:
        lines += [f"# {variable.comment}", f"{variable.name}={variable.value}", ""]
    return "\n".join(lines)


# -- asking ----------------------------------------------------------------------------------


def ask_outlets(
    registry: Registry, ask: Callable[[str], str | None], say: Callable[[str], None]
) -> list[OutletChoice]:
    """Ask for outlets, zones, connectors and modes until an empty outlet id (or EOF)."""
    installed = ", ".join(sorted(registry.connectors))
    outlets: list[OutletChoice] = []
    while True:
        answer = _retry(ask, say, "Outlet id (empty when done): ", _outlet_or_none)
        if answer is None:
            return outlets
        zone = _retry(
            ask,
            say,
            f"Time zone of {answer} (WIB, WITA, WIT or IANA) [WIB]: ",
            lambda text: parse_zone(text or "WIB"),
        )
        outlet = OutletChoice(answer, zone or "Asia/Jakarta")
        names = _retry(
            ask,
            say,
            f"Connectors at {answer} ({installed}; comma-separated, empty for none): ",
            lambda text: [check_connector(n, registry) for n in re.split(r"[, ]+", text) if n],
        )
        for name in names or []:
            supported = registry.connectors[name].modes
            modes: tuple[Mode, ...] = (default_mode(supported),)
            if len(supported) > 1:
                chosen = _retry(
                    ask,
                    say,
                    f"Modes of {name} at {answer} ({_names(supported)}) "
                    f"[{default_mode(supported).value}]: ",
                    partial(_modes_of, name=name, registry=registry),
                )
                modes = chosen or modes
            outlet.connectors.append(ConnectorChoice(name, modes))
        outlets.append(outlet)


def _modes_of(text: str, *, name: str, registry: Registry) -> tuple[Mode, ...]:
    return parse_modes(text, name, registry)


def _outlet_or_none(text: str) -> str | None:
    return parse_outlet_id(text) if text else None


def _retry(
    ask: Callable[[str], str | None],
    say: Callable[[str], None],
    prompt: str,
    parse: Callable[[str], Any],
) -> Any:
    """Ask until `parse` accepts the answer; None at end of input."""
    while True:
        answer = ask(prompt)
        if answer is None:
            return None
        try:
            return parse(answer.strip())
        except InitError as err:
            say(f"  {err}")


def _ask_stdin(prompt: str) -> str | None:
    sys.stdout.write(prompt)
    sys.stdout.flush()
    line = sys.stdin.readline()
    if not line:
        sys.stdout.write("\n")
        return None
    return line.rstrip("\n")


# -- the command -----------------------------------------------------------------------------


def add_init_command(commands: Commands) -> None:
    """Register `sambung init` (it writes a config: `--output`, not `-c`)."""
    sub = commands.add(
        "init",
        "Write a first config (and its env file) for your outlets and connectors.",
        run_init,
        config=False,
    )
    sub.description = __doc__
    sub.formatter_class = argparse.RawDescriptionHelpFormatter
    sub.add_argument(
        "--outlet",
        action="append",
        default=[],
        metavar="ID:TIMEZONE",
        help="an outlet and its zone (WIB, WITA, WIT or IANA); repeatable",
    )
    sub.add_argument(
        "--connector",
        action="append",
        default=[],
        metavar="OUTLET:NAME[:MODE]",
        help="a connector at an outlet, modes joined by + or ,; repeatable",
    )
    sub.add_argument(
        "--output",
        "-o",
        type=Path,
        default=Path("sambung.yaml"),
        help="the YAML to write (default: ./sambung.yaml)",
    )
    sub.add_argument(
        "--env-file", type=Path, help="the env file to write (default: sambung.env beside --output)"
    )
    sub.add_argument(
        "--non-interactive", action="store_true", help="take only the flags, ask nothing"
    )
    sub.add_argument("--force", action="store_true", help="overwrite existing files")


def run_init(args: argparse.Namespace) -> int:
    """Ask or read the flags, then write the config and the env file."""
    registry = plugin_registry()
    output: Path = args.output
    env_file: Path = args.env_file or output.parent / "sambung.env"
    existing = [p for p in (output, env_file) if p.exists()]
    if existing and not args.force:
        names = " and ".join(str(p) for p in existing)
        print(f"sambung init: {names} already exists; use --force to overwrite", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.non_interactive or args.outlet:
            outlets = _from_flags(args, registry)
        else:
            outlets = ask_outlets(registry, _ask_stdin, print)
        if not outlets:
            raise InitError("no outlet given (--outlet ID:TIMEZONE, or answer the questions)")
    except InitError as err:
        print(f"sambung init: {err}", file=sys.stderr)
        return EXIT_USAGE
    text, variables = render(outlets, registry, config_name=output.name, env_file=env_file.name)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    _write_private(env_file, render_env(variables, output.name))
    empty = [v.name for v in variables if not v.value]
    print(f"wrote {output} ({len(outlets)} outlet(s)) and {env_file} (mode 0600)")
    if empty:
        print(f"fill in {env_file}: {', '.join(empty)}")
    print(f"then: set -a; . {env_file}; set +a; sambung check -c {output}")
    return 0


def _from_flags(args: argparse.Namespace, registry: Registry) -> list[OutletChoice]:
    outlets: dict[str, OutletChoice] = {}
    for text in args.outlet:
        outlet = parse_outlet_flag(text)
        if outlet.id in outlets:
            raise InitError(f"--outlet {outlet.id} given twice")
        outlets[outlet.id] = outlet
    for text in args.connector:
        outlet_id, choice = parse_connector_flag(text, outlets, registry)
        if any(c.name == choice.name for c in outlets[outlet_id].connectors):
            raise InitError(f"--connector {text}: {choice.name} already at {outlet_id}")
        outlets[outlet_id].connectors.append(choice)
    return list(outlets.values())


def _write_private(path: Path, text: str) -> None:
    """Write `path` with mode 0600 from the first byte (it may hold a secret)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file (--force) keeps no wider mode
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
