"""recursa.migrations: the Alembic migrations that make and upgrade the store's schema.

They run through `recursa.memory.schema` (`recursa db upgrade`, or `Store.open`),
which configures Alembic in code, so no alembic.ini is shipped. To write a new
revision after changing `recursa.memory.models`, autogenerate it against a
database at head and then review it (full-text search objects are hand-written):

    from alembic import command
    from recursa.memory.engine import make_engine
    from recursa.memory.schema import alembic_config, upgrade

    upgrade("sqlite:////tmp/dev.db")
    config = alembic_config()
    with make_engine("sqlite:////tmp/dev.db").begin() as conn:
        config.attributes["connection"] = conn
        command.revision(config, message="what changed", autogenerate=True, rev_id="0002")
"""
