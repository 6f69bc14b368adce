"""Versioned prompt templates shipped as package data (TOML files rendered with Jinja2)."""
