"""Notifier channels: registered through the hook like any plugin's, each sending one
transition as its receiver expects it (verified by a real receiver or a faithful fake)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from sambung import hookimpl
from sambung.alerts.channel import AlertMessage, ChannelSettings, NotifierChannel, RegisterChannel
from sambung.config import load_config
from sambung.errors import ConfigError, PluginError
from sambung.plugins import check_notifier, load_plugins

sent: list[AlertMessage] = []


class PagerSettings(ChannelSettings):
    """A third party's channel settings."""

    number: str


class PagerChannel(NotifierChannel[PagerSettings]):
    """A third party's channel: remembers what it was asked to send."""

    name = "pager"

    async def send(self, message: AlertMessage) -> None:
        sent.append(message)


@hookimpl
def sambung_register_notifiers(register: RegisterChannel) -> None:
    register(PagerChannel)


def this_module() -> ModuleType:
    return sys.modules[__name__]


def test_builtin_and_plugin_channels_register_through_the_hook() -> None:
    registry = load_plugins(frozenset(), extra_modules=[this_module()])

    assert {"webhook", "email", "telegram", "pager"} <= set(registry.notifiers)
    assert registry.notifiers["pager"].Settings is PagerSettings


def test_an_unfit_channel_class_is_refused() -> None:
    class Nameless(NotifierChannel[PagerSettings]):
        name = "Not A Name"

    with pytest.raises(PluginError, match="name must match"):
        check_notifier(Nameless)
    with pytest.raises(PluginError, match="not a sambung\\.alerts"):
        check_notifier(object)


def write(tmp_path: Path, channels: dict[str, object]) -> Path:
    document = {"outlets": [{"id": "kemang", "name": "Kemang"}], "alerts": {"channels": channels}}
    path = tmp_path / "sambung.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_channel_settings_are_validated_by_their_type_and_secrets_masked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "phone": {"type": "telegram", "bot_token": "123:tg-secret-token", "chat_id": "42"},
            "page": {"type": "pager", "number": "0812"},
        },
    )
    loaded = load_config(path, load_plugins(frozenset(), extra_modules=[this_module()]))

    assert set(loaded.channel_settings) == {"phone", "page"}
    assert "123:tg-secret-token" in loaded.secrets


def test_a_bad_channel_block_names_its_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"phone": {"type": "telegarm", "chat_id": "42"}, "mail": {"type": "email", "host": "h"}},
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path, load_plugins(frozenset()))
    problems = {p.path: p.message for p in raised.value.problems}

    assert "did you mean 'telegram'" in problems["alerts.channels.phone.type"]
    assert "alerts.channels.mail.to" in problems
