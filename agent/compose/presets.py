"""Named composition presets: opening, instructions and sampler settings, as package data.

Presets live in the composition template file (``agent/prompts/compose_v1.toml``,
tables ``[preset.<name>]``), versioned with the templates they are used with.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from recursa.agent.errors import ConfigError, InvalidInputError
from recursa.agent.templates import PROMPTS_PACKAGE

COMPOSE_TEMPLATES = "compose_v1"


@dataclass(frozen=True)
class Preset:
    """A named starting point for a composition."""

    name: str
    description: str
    instructions: str
    opening: str
    temperature: float | None = None
    top_p: float | None = None


@cache
def load_presets(version: str = COMPOSE_TEMPLATES) -> dict[str, Preset]:
    """The presets shipped with a composition template version, by name."""
    resource = resources.files(PROMPTS_PACKAGE) / f"{version}.toml"
    try:
        data = tomllib.loads(resource.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            f"No composition templates of version {version!r} ship with this recursa; "
            f"use {COMPOSE_TEMPLATES!r}."
        ) from exc
    out: dict[str, Preset] = {}
    for name, table in data.get("preset", {}).items():
        out[name] = Preset(
            name=name,
            description=str(table.get("description", "")),
            instructions=str(table.get("instructions", "")),
            opening=str(table.get("opening", "")),
            temperature=table.get("temperature"),
            top_p=table.get("top_p"),
        )
    return out


def get_preset(name: str, version: str = COMPOSE_TEMPLATES) -> Preset:
    """The preset called `name`; InvalidInputError naming the known ones otherwise."""
    presets = load_presets(version)
    if not isinstance(name, str) or name not in presets:
        known = ", ".join(sorted(presets)) or "none"
        raise InvalidInputError(f"Unknown preset {name!r}. Known presets: {known}.")
    return presets[name]
