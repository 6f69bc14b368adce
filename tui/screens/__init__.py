"""Screens of the recursa TUI: the main chat screen and its dialogs."""
