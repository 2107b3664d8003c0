"""Settings: the shipped config file documents the real defaults; overrides
and bad values behave."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver import config
from archiver.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def test_shipped_file_equals_builtin_defaults():
    shipped = config.read_toml(REPO / "config" / "archiver.toml")
    assert shipped == config.defaults_as_dict()


def test_file_then_environment_override(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[capture]\nworkers = 3\nallow_private = false\n[archive]\noperator = "Desk"\n')
    s = config.load(f, environ={"ARCHIVER_ALLOW_PRIVATE": "1", "ARCHIVER_DATA_DIR": str(tmp_path / "d")})
    assert s.capture.workers == 3 and s.capture.allow_private is True
    assert s.archive.operator == "Desk" and s.data_path == tmp_path / "d"


@pytest.mark.parametrize(
    "text,message",
    [
        ("[capture]\nworkrs = 3\n", "unknown setting capture.workrs"),
        ("[captur]\n", "unknown section [captur]"),
        ("[capture]\nworkers = 'many'\n", "expected a whole number"),
        ("[capture\n", "not valid TOML"),
    ],
)
def test_bad_settings_are_named(tmp_path, text, message):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        config.load(f, environ={})


def test_missing_config_file_via_cli(cli, tmp_path):
    r = cli("--config", str(tmp_path / "nope.toml"), "history", "http://x.invalid/")
    assert r.code == 1 and "does not exist" in r.err
