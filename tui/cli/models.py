"""`recursa models`: the model specs recursa knows, which work here, and where their files are."""

from __future__ import annotations

import click
from recursa.tui.cli.common import (
    add_row,
    console,
    echo_json,
    json_option,
    table,
    translate_errors,
)


@click.command("models")
@click.option(
    "-m",
    "--model",
    "specs",
    multiple=True,
    help="A server model (openai:<model>@<base-url>) to ask for its context window and "
    "tokenizer; repeatable. The configured model is asked too when it is one.",
)
@json_option
def models_command(specs: tuple[str, ...], as_json: bool) -> None:
    """Known model specs, whether each is available here, and the default model's files.

    Server models (the configured one, and any given with -m) show their context
    window and where it comes from: the server, a refusal that stated it, a known
    table, the runtime.context_window setting, or a guess.
    """
    from recursa.agent.recall.embedders import embedder_notice
    from recursa.agent.runtime.registry import (
        DEFAULT_MODEL,
        OPENAI_PREFIX,
        SPEC_FORMS,
        describe_server_model,
        known_models,
    )
    from recursa.agent.settings import Settings

    with translate_errors():
        infos = known_models()
        settings = Settings.load()
        configured = settings.model
        asked = list(dict.fromkeys([*specs, configured]))
        for spec in asked:
            if spec.startswith(OPENAI_PREFIX):
                infos.append(describe_server_model(spec, options=settings.runtime.options()))
    recall_notice = embedder_notice(settings.recall.embedder)
    if as_json:
        echo_json({"default": DEFAULT_MODEL, "configured": configured, "models": infos})
        return
    t = table("Spec", "Kind", "Available", "Description")
    for info in infos:
        add_row(t, info.spec, info.kind, "yes" if info.available else "no", info.description)
    out = console()
    out.print(t)
    for info in infos:
        out.print(f"{info.spec}: {info.detail}", markup=False)
    out.print(
        f"Chat model in use: {configured} (change it with -m or RECURSA_MODEL).", markup=False
    )
    out.print(f"Other specs: {SPEC_FORMS}.", markup=False)
    if recall_notice is not None:
        out.print(recall_notice, markup=False)
    else:
        out.print(
            f"Semantic recall: on ({settings.recall.embedder}; change it with "
            "RECURSA_RECALL__EMBEDDER, or 'none' to turn it off).",
            markup=False,
        )
