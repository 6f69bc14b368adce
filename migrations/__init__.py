"""recursa.migrations: the Alembic migrations that make and upgrade the store's schema."""
