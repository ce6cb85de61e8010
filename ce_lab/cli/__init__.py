"""The command line: thin commands that parse, call a domain function and render."""

from ce_lab.cli.app import app, main

__all__ = ["app", "main"]
