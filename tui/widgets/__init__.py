"""Widgets of the recursa TUI: composer, chat view, sidebar, budget bar and inspector."""
