"""Where recursa keeps its files: one place decides every path.

`RECURSA_HOME` overrides everything (tests and users point it at a folder);
`RECURSA_CACHE_DIR` overrides only the cache (so tests can share one converted
model across many homes); `RECURSA_DB_URL` overrides the database.
Every function reads the environment when called, never at import.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from platformdirs import user_cache_dir, user_config_dir, user_data_dir

APP_NAME = "recursa"


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def home_dir(env: Mapping[str, str] | None = None) -> Path | None:
    """The folder named by RECURSA_HOME, or None when it is not set."""
    value = _env(env).get("RECURSA_HOME")
    return Path(value).expanduser() if value else None


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the embedded SQLite database lives."""
    home = home_dir(env)
    return home / "data" if home else Path(user_data_dir(APP_NAME))


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where `config.toml` lives."""
    home = home_dir(env)
    return home if home else Path(user_config_dir(APP_NAME))


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """The TOML config file (it may not exist)."""
    return config_dir(env) / "config.toml"


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where converted models and other rebuildable files live."""
    e = _env(env)
    if e.get("RECURSA_CACHE_DIR"):
        return Path(e["RECURSA_CACHE_DIR"]).expanduser()
    home = home_dir(env)
    return home / "cache" if home else Path(user_cache_dir(APP_NAME))


def server_facts_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where what recursa learnt about model servers is kept (windows, tokenizers).

    It sits in the home's cache, but RECURSA_CACHE_DIR does not move it: that
    variable shares converted model files (the same for everyone), while these
    facts are about the servers one home talks to, keyed by their address.
    """
    home = home_dir(env)
    return (home / "cache" if home else Path(user_cache_dir(APP_NAME))) / "servers"


def default_db_path(env: Mapping[str, str] | None = None) -> Path:
    """The embedded SQLite database file."""
    return data_dir(env) / "recursa.db"


def default_db_url(env: Mapping[str, str] | None = None) -> str:
    """RECURSA_DB_URL when set, else the embedded SQLite database."""
    url = _env(env).get("RECURSA_DB_URL")
    return url if url else f"sqlite:///{default_db_path(env)}"
