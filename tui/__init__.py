"""recursa.tui: the Textual terminal UI and the `recursa` command line."""
