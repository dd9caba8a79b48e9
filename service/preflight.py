"""Placeholder: its subcommands land with their issue."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add this module's subcommands; each sets `handler` to a function (args) -> exit code."""
