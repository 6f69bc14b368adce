"""Typed settings for the dialogue manager: one root with nested sections.

Sources, highest priority first: values passed in code (``Agent.open(**settings)``),
environment variables (``RECURSA_`` prefix, ``__`` between nested names, e.g.
``RECURSA_BUDGET__MAX_PROMPT_TOKENS=512``), the TOML file at
``recursa.memory.locations.config_path()``, then the defaults below. Nothing is
read at import time: ``Settings.load()`` reads the sources when it is called.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)
from recursa.agent.config_sources import (
    describe_settings_error,
    describe_sources,
    read_config_file,
)
from recursa.agent.errors import ConfigError
from recursa.agent.recall.embedders import DEFAULT_EMBEDDER, check_spec
from recursa.agent.runtime.options import RuntimeOptions
from recursa.agent.runtime.protocol import GenerationParams
from recursa.memory import locations

Policy = Literal["window", "summary", "summary+recall"]
POLICIES: tuple[str, ...] = ("window", "summary", "summary+recall")


class BudgetSettings(BaseModel):
    """How the prompt budget is computed and shared between the prompt's sections."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    max_prompt_tokens: int | None = Field(
        default=None,
        ge=16,
        description="Caps the prompt budget below what the model's context window allows "
        "(None: no cap beyond the window).",
    )
    reply_reserve: int = Field(
        default=256, ge=1, description="Tokens of the context window kept free for the reply."
    )
    safety_margin: int = Field(
        default=16,
        ge=0,
        description="Extra tokens kept free, against template or tokenizer surprises.",
    )
    summary_share: float = Field(
        default=0.25,
        ge=0.0,
        le=1.0,
        description="Share of the flexible budget (budget minus system prompt) the summary "
        "may use; a longer summary is condensed.",
    )
    recall_share: float = Field(
        default=0.25,
        ge=0.0,
        le=1.0,
        description="Share of the flexible budget recalled excerpts may use (a turn's new "
        "excerpts take at most half of it; blocks kept from earlier turns the rest). When "
        "not set, it is lowered to what summary_share and window_share leave.",
    )
    window_share: float = Field(
        default=0.45,
        gt=0.0,
        le=1.0,
        description="Share of the flexible budget the verbatim window may grow to before it "
        "is compacted (the high-water mark). The rest of the budget is room for the new "
        "message.",
    )
    oversized_message: Literal["refuse", "cut"] = Field(
        default="refuse",
        description="A message too long to fit the prompt budget even alone: 'refuse' it "
        "with an error (nothing is stored), or 'cut' it: the whole message is stored, the "
        "prompt holds its beginning and a visible note of what was left out.",
    )
    low_water: float = Field(
        default=0.5,
        gt=0.0,
        lt=1.0,
        description="Compaction evicts the oldest exchanges until the window is at most this "
        "fraction of its share (hysteresis: compaction then stays away for several turns).",
    )

    @model_validator(mode="after")
    def _shares_fit(self) -> BudgetSettings:
        left = 1.0 - self.summary_share - self.window_share
        if "recall_share" not in self.model_fields_set and self.recall_share > left:
            # The default gives way to shares the user chose (set without marking it set).
            object.__setattr__(self, "recall_share", max(0.0, round(left, 6)))
        total = self.summary_share + self.recall_share + self.window_share
        if total > 1.0 + 1e-9:
            raise ValueError(
                f"summary_share + recall_share + window_share is {total:.2f}; "
                "it must be at most 1.0 (the rest is room for the new message)"
            )
        return self


class GenerationSettings(BaseModel):
    """Default generation parameters for replies (greedy decoding by default)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    max_new_tokens: int = Field(default=256, ge=1, description="Upper bound on a reply's tokens.")
    temperature: float = Field(default=0.0, ge=0.0, le=5.0, description="0 means greedy decoding.")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    seed: int | None = Field(default=None, description="Sampling seed (None: unseeded).")
    repetition_penalty: float = Field(
        default=1.1, ge=1.0, le=3.0, description="Penalty on already-seen tokens (1.0 = off)."
    )
    stop: tuple[str, ...] = Field(default=(), description="Generation ends before any of these.")

    def params(self, **overrides: Any) -> GenerationParams:
        """These defaults as runtime `GenerationParams`, with optional overrides."""
        data = self.model_dump()
        data.update({k: v for k, v in overrides.items() if v is not None})
        return GenerationParams(**data)


class SummarizerSettings(BaseModel):
    """How evicted turns are folded into the running summary."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str | None = Field(
        default=None,
        description="Model spec of the summarizer (None: the conversation's own model).",
    )
    method: Literal["facts", "model"] = Field(
        default="facts",
        description="How summaries are made: 'facts' keeps the fact-bearing sentences of the "
        "evicted turns (the model condenses only what does not fit, and its answer is checked); "
        "'model' lets the model write the whole summary.",
    )
    max_new_tokens: int = Field(
        default=96, ge=8, description="Upper bound on the tokens of one summarization reply."
    )
    template_version: str = Field(
        default="v2",
        description="Version of the summarizer prompt templates (agent/prompts/*.toml).",
    )
    repetition_penalty: float = Field(
        default=1.2, ge=1.0, le=3.0, description="Penalty against loops in small models' summaries."
    )
    background: bool = Field(
        default=True,
        description="Fold the window in a background thread once a reply is stored, so the "
        "reply never waits for the summarizer; a turn sent meanwhile plans against the "
        "previous summary. False folds before the reply is returned (its trace then lists it).",
    )


class RecallSettings(BaseModel):
    """How archived turns relevant to the new message are found."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    max_hits: int = Field(default=8, ge=0, description="At most this many recalled excerpts.")
    max_excerpt_tokens: int = Field(
        default=96, ge=8, description="A recalled message longer than this is shown as an excerpt."
    )
    embedder: Annotated[str, AfterValidator(check_spec)] = Field(
        default=DEFAULT_EMBEDDER,
        description="Embedding model for semantic recall: 'minilm' (all-MiniLM-L6-v2, run "
        "locally; the default), 'openai:<model>@<base-url>' (an OpenAI-compatible "
        "/v1/embeddings server), a sentence-transformers model folder, or 'none' (full-text "
        "recall only). Vectors are stored per embedder, so changing it never mixes them.",
    )


class RuntimeSettings(BaseModel):
    """Options passed to the model runtime when it is opened."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    device: Literal["cpu", "cuda", "auto"] = Field(
        default="cpu", description="Where a local model runs."
    )
    threads: int | None = Field(
        default=None, ge=1, description="CPU threads (None: the runtime picks)."
    )
    precision: Literal["int4", "int8", "float32", "float16w", "bfloat16", "float16"] | None = Field(
        default=None,
        description=(
            "How a local model holds its weights (None: by the model; the embedded "
            "SmolLM2 runs int4 on CPU)."
        ),
    )
    context_window: int | None = Field(
        default=None,
        ge=64,
        description="Override the model's context window (None: the model's own).",
    )
    api_key_env: str = Field(
        default="OPENAI_API_KEY",
        description="Environment variable holding an HTTP server's API key.",
    )
    timeout_s: float = Field(default=60.0, gt=0, description="HTTP timeout per wait, in seconds.")
    max_retries: int = Field(default=3, ge=0, le=20, description="HTTP retries on 429/5xx/connect.")

    def options(self) -> RuntimeOptions:
        """These settings as the runtime registry's RuntimeOptions."""
        return RuntimeOptions(
            device=self.device,
            threads=self.threads,
            precision=self.precision,
            context_window=self.context_window,
            api_key_env=self.api_key_env,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
        )


class ServeSettings(BaseModel):
    """The HTTP service (`recursa serve`): where it listens, who may call it, how much it takes."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(
        default="127.0.0.1",
        description="Address to listen on. Any other than 127.0.0.1/localhost/::1 needs an "
        "API key.",
    )
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port (0: any free port).")
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Bearer keys clients must send (env: a JSON list or comma-separated). A "
        "conversation created through a key belongs to it; other keys get 404 for it.",
    )
    admin_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Keys that see and continue every conversation (also accepted as API keys).",
    )
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="Larger request bodies get 413."
    )
    request_timeout: float = Field(
        default=300.0,
        gt=0,
        description="Seconds a request may run; a reply still generating then is stopped and "
        "stored as interrupted.",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Browser origins allowed by CORS (empty: CORS off)."
    )
    queue_limit: int = Field(
        default=32,
        ge=0,
        description="Requests that may wait for the model; one more gets 429 with Retry-After.",
    )
    http_concurrency: int = Field(
        default=4,
        ge=1,
        description="Replies generated at once on an HTTP model server (a local model runs "
        "one at a time).",
    )
    graceful_timeout: float = Field(
        default=10.0,
        ge=0,
        description="Seconds shutdown waits for replies in flight before it stops them (they "
        "are stored as interrupted).",
    )

    @field_validator("api_keys", "admin_keys", "cors_origins", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        # From the environment: a JSON list, or (friendlier in a shell) comma-separated.
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                try:
                    return json.loads(value)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"not a JSON list of strings: {exc.msg}") from exc
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class Settings(BaseSettings):
    """The root of recursa's settings."""

    model_config = SettingsConfigDict(
        env_prefix="RECURSA_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
        allow_inf_nan=False,
    )

    model: str = Field(
        default="smollm2-135m", description="The chat model's spec (see `recursa models`)."
    )
    db_url: str | None = Field(
        default=None, description="SQLAlchemy database URL (None: the embedded SQLite database)."
    )
    policy: Policy = Field(
        default="summary+recall",
        description="Prompt memory policy: 'window' (plain sliding window), 'summary' "
        "(running summary + window) or 'summary+recall' (also recall archived turns).",
    )
    system_prompt: str = Field(
        default="You are a helpful assistant.",
        description="System prompt of conversations that do not set their own.",
    )
    budget: BudgetSettings = Field(
        default_factory=BudgetSettings, description="The prompt budget and its shares."
    )
    generation: GenerationSettings = Field(
        default_factory=GenerationSettings, description="Default generation parameters."
    )
    summarizer: SummarizerSettings = Field(
        default_factory=SummarizerSettings, description="The recursive summarizer."
    )
    recall: RecallSettings = Field(
        default_factory=RecallSettings, description="Recall of archived turns."
    )
    runtime: RuntimeSettings = Field(
        default_factory=RuntimeSettings, description="How the model runtime is opened."
    )
    serve: ServeSettings = Field(
        default_factory=ServeSettings, description="The HTTP service (`recursa serve`)."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The config path is resolved now, not at import, so RECURSA_HOME set later counts;
        # the file is read (and every way it can be unreadable reported) by config_sources.
        toml = InitSettingsSource(settings_cls, init_kwargs=read_config_file().data)
        return (init_settings, env_settings, toml)

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None, **kwargs: Any) -> Settings:
        """Read the sources and apply overrides; flat names of section fields are accepted.

        ``Settings.load(max_prompt_tokens=512, policy="window")`` is the same as
        ``Settings.load(budget={"max_prompt_tokens": 512}, policy="window")``.
        Raises ConfigError naming the bad setting.
        """
        data = nest_overrides({**(overrides or {}), **kwargs})
        try:
            return cls(**data)
        except ValidationError as exc:
            raise ConfigError(describe_sources(exc, data, read_config_file())) from exc
        except SettingsError as exc:
            raise ConfigError(describe_settings_error(exc)) from exc

    def merged(self, overrides: Mapping[str, Any] | None) -> Settings:
        """A copy with per-conversation overrides applied (flat or nested names)."""
        if not overrides:
            return self
        # Only what was set: defaults (such as a recall share that gave way to the
        # window's) are worked out again beside the overrides.
        data = self.model_dump(exclude_unset=True)
        for key, value in nest_overrides(overrides).items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        try:
            # model_validate skips the env/TOML sources: only these values count.
            return Settings.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(_describe(exc, where="conversation settings")) from exc


_SECTIONS: dict[str, type[BaseModel]] = {
    "budget": BudgetSettings,
    "generation": GenerationSettings,
    "summarizer": SummarizerSettings,
    "recall": RecallSettings,
    "runtime": RuntimeSettings,
    "serve": ServeSettings,
}
_ROOT_FIELDS = {"model", "db_url", "policy", "system_prompt", *_SECTIONS}
# Flat names that are unambiguous: the first section that defines one owns it.
_FLAT: dict[str, str] = {}
for _section in ("budget", "generation", "recall", "runtime"):
    for _name in _SECTIONS[_section].model_fields:
        _FLAT.setdefault(_name, _section)


def nest_overrides(values: Mapping[str, Any]) -> dict[str, Any]:
    """Turn flat section-field names into nested dicts; unknown names raise ConfigError."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key in _ROOT_FIELDS:
            if key in _SECTIONS and isinstance(value, BaseModel):
                value = value.model_dump()
            if key in _SECTIONS and isinstance(value, Mapping):
                out.setdefault(key, {}).update(value)
            else:
                out[key] = value
        elif key in _FLAT:
            out.setdefault(_FLAT[key], {})[key] = value
        else:
            known = sorted(_ROOT_FIELDS | set(_FLAT))
            raise ConfigError(f"Unknown setting {key!r}. Known settings: {', '.join(known)}.")
    return out


def _describe(exc: ValidationError, *, where: str) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return f"Invalid settings ({where}): " + "; ".join(parts)


def config_file() -> Path:
    """The TOML file settings are read from (it may not exist)."""
    return locations.config_path()
