"""`recursa conversations list|show|search|rename|archive|rm|export|import` (alias `recursa c`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from recursa.tui.cli.common import (
    ID,
    USAGE_EXIT,
    AliasedGroup,
    CliError,
    add_row,
    console,
    counts,
    echo_json,
    json_option,
    open_agent,
    refuse_existing,
    short,
    table,
    to_jsonable,
    when,
    write_whole,
)
from recursa.tui.safe_text import one_line, terminal_safe

ALIASES = {
    "ls": "list",
    "cat": "show",
    "find": "search",
    "mv": "rename",
    "delete": "rm",
    "remove": "rm",
}


@click.group("conversations", cls=AliasedGroup, aliases=ALIASES)
def conversations() -> None:
    """List, read, search, rename, archive, delete, export and import conversations."""


@conversations.command("list")
@click.option("-a", "--all", "include_archived", is_flag=True, help="Include archived ones.")
@click.option("-n", "--limit", type=counts(1), default=None, help="At most N.")
@json_option
def list_command(include_archived: bool, limit: int | None, as_json: bool) -> None:
    """Conversations, most recently active first."""
    with open_agent() as agent:
        infos = agent.list_conversations(include_archived=include_archived, limit=limit)
    if as_json:
        echo_json(infos)
        return
    if not infos:
        click.echo("No conversations yet. Start one with `recursa ask` or `recursa chat`.")
        return
    t = table("ID", "Title", "Msgs", "Model", "Updated")
    for info in infos:
        title = info.title or "(untitled)"
        if info.archived:
            title += " [archived]"
        add_row(
            t,
            str(info.id),
            short(title, 50),
            str(info.message_count),
            info.model or "",
            when(info.updated_at),
        )
    console().print(t)


@conversations.command("show")
@click.argument("conversation_id", metavar="ID", type=ID)
@click.option("--md", "as_md", is_flag=True, help="Print Markdown.")
@json_option
def show_command(conversation_id: int, as_md: bool, as_json: bool) -> None:
    """Print a conversation's messages."""
    if as_md and as_json:
        raise click.UsageError("Choose one of --md and --json.")
    with open_agent(conversation_id=conversation_id) as agent:
        info = agent.get_conversation(conversation_id)
        if as_md:
            from recursa.agent.interchange import export_documents, render_export

            docs = export_documents(agent, [conversation_id])
            click.echo(
                terminal_safe(render_export(docs, "md", conversation_ids=[conversation_id])),
                nl=False,
            )
            return
        messages = agent.messages(conversation_id)
    if as_json:
        echo_json({"conversation": info, "messages": messages})
        return
    out = console()
    out.print(
        f"[bold]{_escape(info.title or '(untitled)')}[/bold]  conversation {info.id}, "
        f"{info.message_count} messages, model {_escape(info.model or '-')}"
        + (", archived" if info.archived else ""),
        markup=True,
    )
    if info.system_prompt:
        out.print(f"system prompt: {info.system_prompt}", markup=False)
    for m in messages:
        flags = "" if m.status == "complete" else f" ({m.status})"
        flags += " [pinned]" if m.pinned else ""
        out.print()
        out.print(
            f"[bold]#{m.seq} {m.role}[/bold] · {when(m.created_at)} · id {m.id}{_escape(flags)}",
            markup=True,
        )
        out.print(m.content, markup=False)


@conversations.command("search")
@click.argument("query")
@click.option(
    "-c",
    "--conversation",
    "conversation_id",
    type=ID,
    default=None,
    help="Search only this conversation.",
)
@click.option("-n", "--limit", type=counts(1, 10_000), default=20, show_default=True)
@click.option(
    "-C",
    "--context",
    "context",
    type=counts(0, 1_000),
    default=1,
    show_default=True,
    help="Messages shown before and after each match.",
)
@json_option
def search_command(
    query: str, conversation_id: int | None, limit: int, context: int, as_json: bool
) -> None:
    """Full-text search: every word of QUERY must appear (taken literally, no operators)."""
    if not query.strip():
        raise click.UsageError("The search query is empty.")
    results: list[dict[str, Any]] = []
    with open_agent(conversation_id=conversation_id) as agent:
        titles: dict[int, str | None] = {}
        for hit in agent.search(query, conversation_id=conversation_id, limit=limit):
            if hit.conversation_id not in titles:
                titles[hit.conversation_id] = agent.get_conversation(hit.conversation_id).title
            around = []
            if hit.kind == "message" and context:
                around = agent.messages(
                    hit.conversation_id,
                    after_seq=max(0, hit.seq - 1 - context),
                    before_seq=hit.seq + context + 1,
                )
            results.append(
                {
                    **to_jsonable(hit),
                    "conversation_title": titles[hit.conversation_id],
                    "context": to_jsonable(around),
                }
            )
    if as_json:
        echo_json(results)
        return
    if not results:
        click.echo(f"No matches for {query!r}.")
        return
    out = console()
    for r in results:
        where = f"summary {r['id']}" if r["kind"] == "summary" else f"message {r['id']}"
        out.print(
            f"[bold]conversation {r['conversation_id']}[/bold] "
            f"{_escape(r['conversation_title'] or '(untitled)')} · {where} "
            f"(#{r['seq']} {r['role']})",
            markup=True,
        )
        if not r["context"]:
            out.print(f"  {short(r['snippet'], 200)}", markup=False)
        for m in r["context"]:
            mark = ">" if m["id"] == r["id"] else " "
            out.print(f" {mark} #{m['seq']} {m['role']}: {short(m['content'], 160)}", markup=False)
        out.print()


@conversations.command("rename")
@click.argument("conversation_id", metavar="ID", type=ID)
@click.argument("title")
def rename_command(conversation_id: int, title: str) -> None:
    """Give a conversation a new title."""
    if not title.strip():
        raise click.BadParameter("is empty: give the new title as text.", param_hint="'TITLE'")
    with open_agent(conversation_id=conversation_id) as agent:
        info = agent.rename_conversation(conversation_id, title.strip())
    click.echo(f"Conversation {info.id} is now titled '{one_line(info.title)}'.")


@conversations.command("archive")
@click.argument("conversation_id", metavar="ID", type=ID)
@click.option("--undo", is_flag=True, help="Unarchive it instead.")
def archive_command(conversation_id: int, undo: bool) -> None:
    """Hide a conversation from `list` (it stays searchable and exportable)."""
    with open_agent(conversation_id=conversation_id) as agent:
        info = agent.archive_conversation(conversation_id, archived=not undo)
    click.echo(f"Conversation {info.id} {'archived' if info.archived else 'unarchived'}.")


@conversations.command("rm")
@click.argument("conversation_ids", metavar="ID...", type=ID, nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def rm_command(conversation_ids: tuple[int, ...], yes: bool) -> None:
    """Delete conversations with their messages, summaries and traces."""
    with open_agent() as agent:
        infos = [agent.get_conversation(cid) for cid in conversation_ids]  # all exist first
        if not yes:
            names = ", ".join(
                f"{i.id} '{one_line(i.title or '(untitled)')}' ({i.message_count} messages)"
                for i in infos
            )
            click.confirm(
                f"Delete conversation {names}? This cannot be undone", abort=True, err=True
            )
        for info in infos:
            agent.delete_conversation(info.id)
    click.echo(f"Deleted {len(infos)} conversation(s).")


@conversations.command("export")
@click.argument("conversation_ids", metavar="[ID]...", type=ID, nargs=-1)
@click.option("--all", "export_all", is_flag=True, help="Every conversation, archived included.")
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["json", "jsonl", "md"]),
    default="json",
    show_default=True,
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default=None,
    help="Write to FILE instead of standard output ('-': standard output).",
)
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
def export_command(
    conversation_ids: tuple[int, ...], export_all: bool, fmt: str, output: Path | None, force: bool
) -> None:
    """Export conversations: json (re-importable), jsonl (re-importable) or md (for reading).

    json gives one document for one ID, a list of documents for several or --all.
    """
    if export_all == bool(conversation_ids):
        raise click.UsageError("Give conversation IDs or --all (not both).")
    if output is not None and str(output) == "-":
        output = None
    if output is not None:
        refuse_existing(output, force)
    from recursa.agent.interchange import export_documents, render_export

    with open_agent() as agent:
        if export_all:
            ids = [c.id for c in agent.list_conversations(include_archived=True)]
            ids.reverse()  # oldest first, so a re-import keeps their order
        else:
            ids = list(conversation_ids)
        docs = export_documents(agent, ids)
    text = render_export(
        docs,
        fmt,
        conversation_ids=ids,  # type: ignore[arg-type]
        as_list=True if export_all else None,
    )
    if output is None:
        click.echo(text, nl=False)
        return
    write_whole(output, text)
    click.echo(f"Exported {len(docs)} conversation(s) to {output}.", err=True)


@conversations.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["auto", "json", "jsonl", "chatgpt"]),
    default="auto",
    show_default=True,
    help="auto: .jsonl/.ndjson files are JSONL; JSON with a 'mapping' is a ChatGPT "
    "export; other JSON is recursa's document (or a list of them).",
)
@click.option(
    "--again",
    is_flag=True,
    help="Import conversations that were imported before as new copies "
    "(by default they are recognised by their content and skipped).",
)
@click.option(
    "--max-size",
    "max_mb",
    type=counts(1, 1_000_000),
    default=512,
    show_default=True,
    metavar="MB",
    help="Refuse files larger than this many megabytes.",
)
@json_option
def import_command(file: Path, fmt: str, again: bool, max_mb: int, as_json: bool) -> None:
    """Import conversations from a recursa JSON/JSONL export or a ChatGPT conversations.json.

    The whole file is checked first; then every conversation is imported in one
    transaction, or none (an interrupted import leaves nothing). Conversations
    imported before (same content) are skipped unless --again.
    """
    from recursa.agent.interchange import import_documents, read_conversations

    with open_agent() as agent:
        batch = read_conversations(file, fmt, max_bytes=max_mb * 1024 * 1024)  # type: ignore[arg-type]
        result = import_documents(agent, batch.documents, source=file.name, again=again)
        if not result.imported_ids and result.skipped:
            existing = ", ".join(str(cid) for cid in sorted(set(result.skipped.values())))
            raise CliError(
                f"{file.name} was already imported (conversation(s) {existing}); nothing was "
                "imported. Pass --again to import copies.",
                USAGE_EXIT,
            )
        infos = [agent.get_conversation(cid) for cid in result.imported_ids]
        _embed_imported(agent, result.imported_ids, quiet=as_json)
    skipped = [
        f"conversation [{index}] was imported before as conversation {cid}; skipped "
        "(--again imports a copy)"
        for index, cid in result.skipped.items()
    ]
    if as_json:
        echo_json(
            {
                "format": batch.format,
                "conversations": [
                    {"id": i.id, "title": i.title, "message_count": i.message_count} for i in infos
                ],
                "skipped": [
                    {"index": index, "existing_id": cid} for index, cid in result.skipped.items()
                ],
                "notes": batch.notes + skipped,
            }
        )
        return
    for note in batch.notes + skipped:
        click.echo(f"Note: {one_line(note)}", err=True)
    for info in infos:
        click.echo(
            f"Imported conversation {info.id} '{one_line(info.title or '(untitled)')}' "
            f"({info.message_count} messages)."
        )


def _embed_imported(agent: Any, conversation_ids: list[int], *, quiet: bool) -> None:
    """Compute the imported messages' vectors for semantic recall now, with a progress bar.

    The import is already committed: a failure here only defers the vectors to the
    first search that needs them, and says so.
    """
    from recursa.agent.errors import RecursaError
    from rich.console import Console
    from rich.progress import Progress

    if agent.recall_notice() is not None or not conversation_ids:
        return
    try:
        with Progress(console=Console(stderr=True), disable=quiet, transient=True) as bar:
            task = bar.add_task("Embedding messages for recall", total=None)
            for cid in conversation_ids:
                agent.backfill_embeddings(
                    cid, lambda done, total: bar.update(task, completed=done, total=total)
                )
    except RecursaError as exc:
        click.echo(
            f"Note: semantic recall vectors were not computed ({one_line(exc)}); they "
            "will be computed when first needed.",
            err=True,
        )


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
