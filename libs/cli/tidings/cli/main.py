"""The `tidings` command line.

Each service starts alone, configured by environment variables only, which is how containers
and the chaos drills run them; `tidings dev` runs them all together on one machine.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable
from importlib.metadata import version as package_version
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from tidings.cli.lag import lag as lag_command
from tidings.common.cli import fail, load_settings
from tidings.common.logging import configure_logging
from tidings.common.runtime import PortInUseError, run_service
from tidings.common.settings import KafkaSettings, LogSettings

# Commands that live in a service package are imported only when used: an image that
# installs one service's extra (the gateway has no qdrant or torch) must still run `tidings`.
_LAZY_COMMANDS = {
    "memory": ("tidings.memory.cli", "memory_app", "memory"),
    "ingest": ("tidings.memory.cli", "ingest", "memory"),
    "store": ("tidings.store.cli", "store", "store"),
}


class _LazyGroup(TyperGroup):
    # `Any`: typer vendors its own click, whose types are not public.
    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *_LAZY_COMMANDS]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in _LAZY_COMMANDS:
            return super().get_command(ctx, cmd_name)
        module_name, attribute, extra = _LAZY_COMMANDS[cmd_name]
        try:
            target: Any = getattr(importlib.import_module(module_name), attribute)
        except ImportError as exc:
            return _missing_extra(cmd_name, extra, exc)
        if not isinstance(target, typer.Typer):
            single = typer.Typer(add_completion=False)
            single.command(cmd_name)(target)
            target = single
        command = typer.main.get_command(target)
        command.name = cmd_name
        return command


def _missing_extra(name: str, extra: str, exc: ImportError) -> TyperCommand:
    def explain() -> None:
        raise fail(
            f"`tidings {name}` needs the {extra} extra ({exc.name} is missing): "
            f"pip install 'tidings[{extra}]'",
            2,
        )

    return TyperCommand(name, callback=explain, help=f"(needs the {extra} extra)")


app = typer.Typer(
    cls=_LazyGroup,
    name="tidings",
    help="Tidings: an event-driven LLM support chat (gateway, responder, memory on Kafka).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"tidings {package_version('tidings')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the installed version and exit.",
        ),
    ] = False,
) -> None:
    """Tidings: an event-driven LLM support chat (gateway, responder, memory on Kafka)."""


topics_app = typer.Typer(help="Create or list the Kafka topics of the event contract.")
app.add_typer(topics_app, name="topics")
app.command("lag")(lag_command)


def _run(service: str, main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    try:
        run_service(main)
    except PortInUseError as exc:
        raise fail(str(exc), 2) from None
    except ConnectionError as exc:
        raise fail(f"{service}: {exc}") from None


@app.command()
def gateway() -> None:
    """Run the HTTP/SSE gateway (GATEWAY_* and KAFKA_* variables)."""
    from tidings.gateway.service import serve
    from tidings.gateway.settings import GatewaySettings

    settings = load_settings(GatewaySettings)
    configure_logging("gateway", settings.log)
    _run("gateway", lambda stop: serve(settings, stop))


@app.command()
def responder() -> None:
    """Run the responder worker (RESPONDER_*, LLM_BACKEND, OPENAI_*, KAFKA_* variables)."""
    from tidings.responder.service import serve
    from tidings.responder.settings import ResponderSettings

    settings = load_settings(ResponderSettings)
    configure_logging("responder", settings.log)
    _run("responder", lambda stop: serve(settings, stop))


@app.command()
def dev() -> None:
    """Start the whole stack here: broker, LLM server, memory, responder, gateway."""
    from tidings.cli.dev import dev_main

    raise typer.Exit(dev_main())


@topics_app.command("create")
def topics_create(
    partitions: Annotated[
        int | None, typer.Option(help="Partitions per topic (default KAFKA_TOPIC_PARTITIONS).")
    ] = None,
) -> None:
    """Create the topics (and their dead-letter topics) if they do not exist."""
    from tidings.common.kafka import ensure_topics

    settings = KafkaSettings()
    if partitions is not None:
        settings = settings.model_copy(update={"topic_partitions": partitions})
    configure_logging("topics", LogSettings(format="console"))
    try:
        asyncio.run(ensure_topics(settings, attempts=10))
    except (ConnectionError, RuntimeError) as exc:
        raise fail(str(exc)) from None


@topics_app.command("list")
def topics_list() -> None:
    """List the contract's topics with their partition counts."""
    from tidings.common.kafka import all_topics, describe_partitions

    settings = KafkaSettings()
    try:
        counts = asyncio.run(describe_partitions(settings, all_topics(settings)))
    except ConnectionError as exc:
        raise fail(str(exc)) from None
    for topic in all_topics(settings):
        partitions = counts.get(topic)
        typer.echo(f"{topic}\t{len(partitions) if partitions is not None else 'missing'}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
