"""`tidings store`: run the bookstore backend (STORE_* variables)."""

from __future__ import annotations

from tidings.common.cli import fail, load_settings
from tidings.common.logging import configure_logging
from tidings.common.runtime import PortInUseError, run_service
from tidings.store.service import serve
from tidings.store.settings import StoreSettings


def store() -> None:
    """Run the bookstore backend: orders and catalogue for the bot's tools (STORE_*)."""
    settings = load_settings(StoreSettings)
    configure_logging("store", settings.log)
    try:
        run_service(lambda stop: serve(settings, stop))
    except PortInUseError as exc:
        raise fail(str(exc), 2) from None
