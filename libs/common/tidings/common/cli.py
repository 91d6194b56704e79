"""What every command-line entry point shares: one-line errors and settings loading.

Used by the `tidings` CLI and by the commands that live in service packages (`tidings
memory`, `tidings ingest`), so a bad configuration reads the same everywhere.
"""

from __future__ import annotations

from typing import TypeVar

import typer
from pydantic import ValidationError
from pydantic_settings import BaseSettings

_S = TypeVar("_S", bound=BaseSettings)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `error: message` to stderr and return the Exit to raise (no traceback)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def load_settings(settings_class: type[_S]) -> _S:
    """Read settings from the environment; invalid values exit 2 with every problem named."""
    try:
        return settings_class()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise fail(f"invalid configuration: {problems}", 2) from None
