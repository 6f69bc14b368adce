"""Versioned prompt templates: TOML package data rendered with Jinja2 and StrictUndefined.

``Templates.load("v2")`` reads ``recursa/agent/prompts/v2.toml``. Each table is
one template (``template``, and for model-facing requests a ``system`` text).
Every stored summary and trace records the version it was rendered with, and
a stored trace re-renders with its own version: a version's file never changes
once shipped (v1: the first; v2: v1's prompt text plus the fact-keeping
summarizer's and document summaries' templates).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import jinja2
from recursa.agent.errors import ConfigError

PROMPTS_PACKAGE = "recursa.agent.prompts"


@dataclass(frozen=True)
class Templates:
    """The templates of one version, compiled once."""

    version: str
    tables: dict[str, dict[str, str]]
    _compiled: dict[str, jinja2.Template] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def load(cls, version: str = "v1") -> Templates:
        """Load a template version shipped with recursa (cached per version)."""
        return _load(version)

    def render(self, name: str, **variables: Any) -> str:
        """Render template `name`; a missing variable raises instead of rendering blank."""
        template = self._compiled.get(name)
        if template is None:
            table = self.tables.get(name)
            if table is None or "template" not in table:
                raise ConfigError(
                    f"Prompt template {name!r} is missing from version {self.version!r}."
                )
            env = jinja2.Environment(
                undefined=jinja2.StrictUndefined,
                keep_trailing_newline=True,
                autoescape=False,  # prompts are plain text, not HTML
            )
            template = env.from_string(table["template"])
            self._compiled[name] = template
        return template.render(**variables)

    def system_text(self, name: str) -> str:
        """The fixed system message of a model-facing template (may be empty)."""
        return self.tables.get(name, {}).get("system", "")

    def prompt_version(self, name: str) -> str:
        """The name recorded with what a template produced, e.g. 'summarize/v1'."""
        return f"{name}/{self.version}"


@cache
def _load(version: str) -> Templates:
    if not version.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(f"Bad prompt template version {version!r}; use a name like 'v1'.")
    resource = resources.files(PROMPTS_PACKAGE) / f"{version}.toml"
    try:
        raw = resource.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        shipped = sorted(
            r.name.removesuffix(".toml")
            for r in resources.files(PROMPTS_PACKAGE).iterdir()
            if r.name.endswith(".toml") and r.name[:1] == "v"
        )
        raise ConfigError(
            f"No prompt templates of version {version!r} ship with this recursa; "
            f"set summarizer.template_version to one of: {', '.join(shipped)}."
        ) from exc
    data = tomllib.loads(raw)
    tables = {k: dict(v) for k, v in data.items() if isinstance(v, dict)}
    return Templates(version=version, tables=tables)
