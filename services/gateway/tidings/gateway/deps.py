"""What the routes depend on, gathered as `Annotated` aliases.

The long-lived objects are owned by `GatewayService` (or a test) and handed to `create_app`,
which keeps them on `app.state`; routes never reach for globals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Request

from tidings.gateway.hub import FanoutHub
from tidings.gateway.publisher import Publisher
from tidings.gateway.readiness import Readiness
from tidings.gateway.settings import GatewaySettings


@dataclass(frozen=True, slots=True)
class GatewayContext:
    """The objects one gateway app works with."""

    settings: GatewaySettings
    publisher: Publisher
    hub: FanoutHub
    readiness: Readiness


def get_context(request: Request) -> GatewayContext:
    return cast(GatewayContext, request.app.state.gateway)


def get_settings(request: Request) -> GatewaySettings:
    return get_context(request).settings


def get_publisher(request: Request) -> Publisher:
    return get_context(request).publisher


def get_hub(request: Request) -> FanoutHub:
    return get_context(request).hub


def get_readiness(request: Request) -> Readiness:
    return get_context(request).readiness


SettingsDep = Annotated[GatewaySettings, Depends(get_settings)]
PublisherDep = Annotated[Publisher, Depends(get_publisher)]
HubDep = Annotated[FanoutHub, Depends(get_hub)]
ReadinessDep = Annotated[Readiness, Depends(get_readiness)]
