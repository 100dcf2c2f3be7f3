"""README's configuration table is the settings, and the settings are README's table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from voting.settings import Settings, SettingsError, variables

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_rows() -> dict[str, str]:
    """``VOTING_*`` name → the text of its table row in README's Configuration section."""
    text = README.read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        if not line.startswith("| `VOTING_"):
            continue
        first_cell = line.split("|")[1]
        names = re.findall(r"`(VOTING_[A-Z0-9_]+|_[A-Z0-9_]+)`", first_cell)
        stem = names[0].rsplit("_", 1)[0]
        for name in names:
            rows[name if name.startswith("VOTING_") else stem + name] = line
    return rows


def test_every_setting_is_documented_and_nothing_else():
    documented = readme_rows()
    declared = {name for name, _ in variables()}
    assert sorted(declared - documented.keys()) == []
    assert sorted(documented.keys() - declared) == []


def test_the_table_states_each_default():
    rows = readme_rows()
    for name, f in variables():
        default = f.default
        if default in (None, "", ()):
            continue  # generated, embedded or none: the row says how
        shown = str(default).lower() if isinstance(default, bool) else str(default)
        assert shown in rows[name], f"{name}: default {shown!r} not in README's row"


def test_replace_names_settings_by_variable():
    s = Settings().replace(run_persister=False, port=8001, ballot_rate=7)
    assert (s.persister.run, s.server.port, s.limits.ballot_rate) == (False, 8001, 7)
    with pytest.raises(TypeError, match="VOTING_NO_SUCH"):
        Settings().replace(no_such=1)


def test_a_bad_variable_changes_nothing_and_is_named(tmp_path):
    with pytest.raises(SettingsError, match="VOTING_PERSIST_BATCH must be >= 1, got 0"):
        Settings.from_env({"VOTING_DATA_DIR": str(tmp_path), "VOTING_PERSIST_BATCH": "0"})
    with pytest.raises(SettingsError, match="VOTING_TRUSTED_PROXIES"):
        Settings.from_env({"VOTING_DATA_DIR": str(tmp_path), "VOTING_TRUSTED_PROXIES": "x"})


def test_public_url_and_organisation(tmp_path):
    env = {"VOTING_DATA_DIR": str(tmp_path)}
    s = Settings.from_env({**env, "VOTING_PUBLIC_URL": " HTTPS://Bloc.Example.vn/binh-chon "})
    assert s.server.public_url == "https://bloc.example.vn/binh-chon/"
    assert Settings.from_env(env).server.public_url is None
    assert Settings.from_env(env).documents.organisation.startswith("Đảng bộ Khối")
    for bad in ("bloc.example.vn", "ftp://bloc.example.vn/", "https:///x", "https://a.vn/?x=1"):
        with pytest.raises(SettingsError, match="VOTING_PUBLIC_URL"):
            Settings.from_env({**env, "VOTING_PUBLIC_URL": bad})
    with pytest.raises(SettingsError, match="VOTING_ORGANISATION"):
        Settings.from_env({**env, "VOTING_ORGANISATION": "x" * 201})
