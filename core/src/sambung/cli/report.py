"""What `sambung check` and `sambung plugins` say, as lines: the CLI prints them, the operator
console shows them. Names, modes and URLs only: never a secret value."""

from __future__ import annotations

from sambung.config import LoadedConfig
from sambung.plugins import Registry
from sambung.store import display_url


def check_report(loaded: LoadedConfig) -> list[str]:
    """`sambung check`'s lines for a loaded (valid) config."""
    config = loaded.config
    public = config.server.public
    lines = [
        f"config: {loaded.path}",
        f"store: {display_url(config.store.url)}",
        f"public listener: {public.host}:{public.port} (max body {public.max_body_bytes} bytes)",
    ]
    for outlet in config.outlets:
        lines += ["", f"outlet {outlet.id} — {outlet.name} ({outlet.timezone})"]
        connections = [c for c in loaded.connections if c.outlet.id == outlet.id]
        if not connections:
            lines.append("  (no connectors)")
        for connection in connections:
            modes = ", ".join(sorted(connection.settings.mode))
            state = "" if connection.settings.enabled else " [disabled]"
            lines.append(f"  {connection.name}: {modes}{state}")
            if "webhook" in connection.settings.mode:
                lines.append(f"    webhook URL: {loaded.webhook_url(connection)}")
    if config.sinks:
        lines += ["", "sinks:"]
        for name, sink in config.sinks.items():
            taken = loaded.sink_kinds(name)
            kinds = ", ".join(taken) if taken else "every vendor kind"
            outlets = ", ".join(sink.outlets) if sink.outlets else "every outlet"
            lines.append(f"  {name}: {sink.type} ({kinds}; {outlets})")
    return [*lines, "", "config OK"]


def plugins_report(registry: Registry) -> list[str]:
    """`sambung plugins`' lines: each plugin with its version, connectors and sinks."""
    lines: list[str] = []
    if not registry.plugins and not registry.failures:
        lines.append("no sambung plugins installed")
    for plugin in registry.plugins:
        lines.append(f"{plugin.name} {plugin.version} ({plugin.distribution})")
        for name in plugin.connectors:
            modes = ", ".join(sorted(registry.connectors[name].modes))
            lines.append(f"  connector {name}: {modes}")
        lines.extend(f"  sink {name}" for name in plugin.sinks)
    for failure in registry.failures:
        lines.append(f"{failure.name} FAILED to load ({failure.distribution}): {failure.error}")
    return lines
