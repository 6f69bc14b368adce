"""Where each setting came from, so a bad one is blamed on its source with the fix.

`read_config_file()` reads `config.toml` and turns every way it can be unusable
(a folder in its place, unreadable, not UTF-8, a NUL byte, a TOML syntax error)
into a ConfigError naming the file, the line and the fix. `describe_sources`
turns a settings ValidationError into one message that names, for each bad
value, where it came from: the environment variable, the config file and line,
or the value passed in code (a command-line option).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from recursa.agent.errors import ConfigError
from recursa.memory import locations

__all__ = ["ConfigFile", "describe_settings_error", "describe_sources", "read_config_file"]

ENV_PREFIX = "RECURSA_"
ENV_DELIMITER = "__"


@dataclass(frozen=True)
class ConfigFile:
    """The config file's path, its text ("" when there is none) and its parsed table."""

    path: Path
    text: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def line_of(self, loc: tuple[str, ...]) -> int | None:
        """The line that sets `loc` (e.g. ("generation", "temperature")), if it can be found."""
        if not self.text or not loc:
            return None
        section, key = (loc[:-1], loc[-1])
        current: tuple[str, ...] = ()
        for number, line in enumerate(self.text.splitlines(), start=1):
            stripped = line.strip()
            header = re.match(r"^\[\s*([^\]]+?)\s*\]", stripped)
            if header:
                current = tuple(p.strip().strip('"') for p in header.group(1).split("."))
                continue
            dotted = re.match(r"^([A-Za-z0-9_.\"-]+)\s*=", stripped)
            if dotted:
                path = current + tuple(p.strip('"') for p in dotted.group(1).split("."))
                if path == (*section, key) or path == (*section,) and key not in self.data:
                    return number
        return None


def read_config_file(path: Path | None = None) -> ConfigFile:
    """The config file, parsed (a missing file is an empty one); unusable: ConfigError."""
    path = path if path is not None else locations.config_path()
    fix = f"Fix or remove {path} (settings can also be given as RECURSA_* variables)."
    if path.is_dir():
        raise ConfigError(
            f"The config file {path} is a folder, not a file: move it aside (recursa reads "
            "settings from a TOML file at that path)."
        )
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return ConfigFile(path)
    except OSError as exc:
        raise ConfigError(
            f"Cannot read the config file {path} ({exc.strerror or exc}). {fix}"
        ) from None
    if b"\x00" in raw:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise ConfigError(
            f"The config file {path} contains a NUL byte (line {line}), so it is not a text "
            f"file. {fix}"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"The config file {path} is not UTF-8 text (line {line}, byte {exc.start}): "
            f"save it as UTF-8. {fix}"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"The config file {path} is not valid TOML: {exc}. Fix that line "
            '(strings need quotes: model = "smollm2-135m"), or move the file aside.'
        ) from None
    return ConfigFile(path, text, data)


def env_var_for(loc: tuple[str, ...], env: Mapping[str, str] | None = None) -> str | None:
    """The RECURSA_* variable that set `loc` (or its section), if one is set."""
    env = os.environ if env is None else env
    names = {k.upper(): k for k in env}
    for depth in range(len(loc), 0, -1):
        wanted = ENV_PREFIX + ENV_DELIMITER.join(loc[:depth]).upper()
        if wanted in names:
            return names[wanted]
    # A section-wide check (shares that do not add up) may come from any of its variables.
    section = ENV_PREFIX + loc[0].upper() + ENV_DELIMITER if loc else None
    inside = sorted(names[n] for n in names if section and n.startswith(section))
    return inside[0] if inside else None


def _in(data: Mapping[str, Any], loc: tuple[str, ...]) -> bool:
    node: Any = data
    for part in loc:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def describe_sources(exc: ValidationError, passed: Mapping[str, Any], config: ConfigFile) -> str:
    """One message naming each bad setting, its value's source and what to do."""
    parts = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        name = ".".join(loc) or "settings"
        message = err["msg"]
        if err["type"] == "finite_number":
            message = "Input should be a finite number (not nan or inf)"
        variable = env_var_for(loc)
        if _in(passed, loc):
            where = "the value given to recursa (an option or Agent.open argument)"
        elif variable is not None:
            where = f"environment variable {variable}={os.environ.get(variable, '')!r}"
            message += f"; fix or unset {variable}"
        elif _in(config.data, loc) or (loc and loc[0] not in passed and _in(config.data, loc[:1])):
            line = config.line_of(loc)
            where = f"{config.path}" + (f", line {line}" if line is not None else "")
            message += f"; fix it in {config.path.name}"
        else:
            where = "default"
        parts.append(f"{name} ({where}): {message}")
    return "Invalid settings: " + "; ".join(parts) + "."


def describe_settings_error(exc: Exception) -> str:
    """A SettingsError (a value that could not even be parsed), blamed on its source."""
    text = str(exc)
    match = re.search(r'field "([^"]+)"', text)
    if match and "Env" in text:
        variable = env_var_for((match.group(1),))
        if variable is not None:
            return (
                f"The environment variable {variable} could not be read as the setting "
                f"{match.group(1)!r} ({text}); fix or unset it."
            )
    return f"Invalid settings: {text}."
