"""recursa.memory: the SQL-persisted conversation memory and its token accounting.

This layer imports nothing else of recursa's. It provides the store (conversations,
messages, summaries, prompt traces, full-text search), the typed records the rest of
the code sees instead of ORM rows, token counting, and the locations of user files.
"""
