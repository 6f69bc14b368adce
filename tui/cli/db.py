"""`recursa db upgrade|current|path`: look after the store's database schema."""

from __future__ import annotations

import click

URL_HELP = "Database URL (default: RECURSA_DB_URL, else the SQLite file in the data directory)."


@click.group()
def db() -> None:
    """Create, upgrade and locate the conversation database."""


@db.command("upgrade")
@click.option("--url", default=None, help=URL_HELP)
def upgrade_command(url: str | None) -> None:
    """Create the database or bring its schema up to date."""
    from recursa.agent.database import default_url, display_url, upgrade

    target = url or default_url()
    revision = upgrade(target)
    click.echo(f"{display_url(target)} is at schema revision {revision} (head).")


@db.command("current")
@click.option("--url", default=None, help=URL_HELP)
def current_command(url: str | None) -> None:
    """Show the database's schema revision and whether it is up to date."""
    from recursa.agent.database import current_revision, head_revision, is_known_revision

    revision = current_revision(url)
    head = head_revision()
    if revision is None:
        click.echo(f"none (empty database; head is {head}: run `recursa db upgrade`)")
    elif revision == head:
        click.echo(f"{revision} (head)")
    elif not is_known_revision(revision):
        click.echo(f"{revision} (made by a newer recursa; head here is {head}: upgrade recursa)")
    else:
        click.echo(f"{revision} (head is {head}: run `recursa db upgrade`)")


@db.command("path")
@click.option("--url", default=None, help=URL_HELP)
def path_command(url: str | None) -> None:
    """Print where the database is: the SQLite file, or the server URL (password hidden)."""
    from recursa.agent.database import location

    click.echo(location(url))
