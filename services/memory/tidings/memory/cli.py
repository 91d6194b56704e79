"""Command-line parts of the memory service: `tidings memory [rebuild]` and `tidings ingest
[files|confluence]`.

`ingest` writes to Qdrant directly, like `rebuild`. With a Qdrant server (`QDRANT_URL`)
both run next to the memory worker; in local mode (`QDRANT_PATH`, one process per folder)
the worker must be stopped first, and they say so if it is not.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from typer.core import TyperGroup

from tidings.common.cli import fail, load_settings
from tidings.common.logging import configure_logging
from tidings.common.settings import LogSettings
from tidings.memory.collection import (
    EmbeddingModelMismatchError,
    ModelStamp,
    VectorSizeMismatchError,
)
from tidings.memory.embedder import Embedder, EmbedderError, TextEmbedder
from tidings.memory.knowledge.confluence import ConfluenceError, ConfluenceSpace
from tidings.memory.knowledge.ingest import FileSource, Ingestor, IngestReport, sample_source
from tidings.memory.knowledge.store import (
    KnowledgeStore,
    new_knowledge_collection,
    switch_knowledge_collection,
)
from tidings.memory.settings import MemorySettings
from tidings.memory.store import QdrantLockedError, open_qdrant

memory_app = typer.Typer(
    help="Run the memory worker (MEMORY_*, QDRANT_*, KAFKA_*), or rebuild its collection.",
    invoke_without_command=True,
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)
CONFLUENCE_PAGE_SIZE = 50  # pages per REST request
_STORE_ERRORS = (
    QdrantLockedError,
    EmbeddingModelMismatchError,
    VectorSizeMismatchError,
    EmbedderError,
)


def _settings() -> MemorySettings:
    return load_settings(MemorySettings)


@memory_app.callback()
def memory(ctx: typer.Context) -> None:
    """Run the memory worker and its HTTP API (without a subcommand)."""
    if ctx.invoked_subcommand is not None:
        return
    from tidings.common.runtime import PortInUseError, run_service
    from tidings.memory.service import serve

    settings = _settings()
    configure_logging("memory", settings.log)
    try:
        run_service(lambda stop: serve(settings, stop))
    except PortInUseError as exc:
        raise fail(str(exc), 2) from None
    except (ConnectionError, *_STORE_ERRORS) as exc:
        raise fail(f"memory: {exc}") from None


@memory_app.command("rebuild")
def rebuild_command(
    keep_old: Annotated[
        bool, typer.Option("--keep-old", help="Keep the previous collection after switching.")
    ] = False,
) -> None:
    """Replay the topics into a fresh collection and switch QDRANT_COLLECTION to it.

    For example after changing MEMORY_EMBEDDING_MODEL. Local mode: stop the worker first.
    """
    from tidings.memory.rebuild import rebuild

    settings = _settings()
    configure_logging("memory", LogSettings(level="WARNING", format="console"))
    console = Console(stderr=True)
    embedder = _load_embedder(settings, console)
    with _progress(console) as bar:
        task = bar.add_task("replaying turns", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, advance=done, total=total)

        try:
            report = asyncio.run(rebuild(settings, embedder, keep_old=keep_old, progress=advance))
        except (ConnectionError, *_STORE_ERRORS) as exc:
            raise fail(str(exc)) from None
    typer.echo(
        f"{settings.qdrant.collection} -> {report.collection}: {report.turns} turns from "
        f"{report.records} records ({report.rejected} invalid records skipped); previous "
        f"collection {report.previous or '(none)'}"
        + (" kept" if keep_old and report.previous else " removed" if report.previous else "")
    )


class _FilesByDefault(TyperGroup):
    """`tidings ingest PATH...` and `tidings ingest --sample` stay as they were: arguments
    that do not name a subcommand go to `ingest files`."""

    # `Any`: typer vendors its own click, whose types are not public.
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = ["files", *args]
        result: list[str] = super().parse_args(ctx, args)
        return result


ingest = typer.Typer(
    cls=_FilesByDefault,
    help="Add documents to the knowledge base: files and folders (the default), or a "
    "Confluence space. Unchanged documents are skipped, deleted ones removed.",
    add_completion=False,
    pretty_exceptions_enable=False,
)
_RECREATE_HELP = (
    "Start a new knowledge collection with only this run's documents "
    "(after changing the embedding model)."
)


@ingest.command("files")
def ingest_files(
    targets: Annotated[
        list[Path] | None,
        typer.Argument(help="Files and folders (Markdown, HTML, text, PDF).", show_default=False),
    ] = None,
    sample: Annotated[
        bool, typer.Option("--sample", help="Ingest the bundled bookstore knowledge base.")
    ] = False,
    recreate: Annotated[bool, typer.Option("--recreate", help=_RECREATE_HELP)] = False,
) -> None:
    """Files and folders, or the bundled sample (`tidings ingest PATH...` runs this).

    Local Qdrant mode: stop the memory worker first (one process per folder).
    """
    if not targets and not sample:
        raise fail("nothing to ingest: give files or folders, --sample, or `confluence`", 2)
    sources = [sample_source()] if sample else []
    _run_ingest(sources + [FileSource.of(p) for p in targets or []], None, recreate=recreate)


@ingest.command("confluence")
def ingest_confluence(
    url: Annotated[str | None, typer.Option(help="Confluence base URL.")] = None,
    space: Annotated[str | None, typer.Option(help="Confluence space key.")] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            help="File holding the token (else CONFLUENCE_TOKEN): a personal access token, "
            "or with --email a Confluence Cloud API token. Never on the command line, where "
            "`ps` shows it."
        ),
    ] = None,
    email: Annotated[
        str | None,
        typer.Option(
            envvar="CONFLUENCE_EMAIL",
            help="Confluence Cloud: the account's e-mail; the token is then sent as Basic auth.",
        ),
    ] = None,
    allow_http: Annotated[
        bool,
        typer.Option(
            "--allow-http", help="Accept a plain http:// URL (the token travels unencrypted)."
        ),
    ] = False,
    export: Annotated[
        Path | None, typer.Option(help="Folder of a Confluence HTML export (instead of --url).")
    ] = None,
    recreate: Annotated[bool, typer.Option("--recreate", help=_RECREATE_HELP)] = False,
) -> None:
    """A Confluence space, through its REST API (--url, --space) or an HTML export (--export).

    Local Qdrant mode: stop the memory worker first (one process per folder).
    """
    if export is not None:
        if url or space:
            raise fail("--export reads a folder: it goes without --url and --space", 2)
        _run_ingest([FileSource.of(export)], None, recreate=recreate)
    elif url and space:
        try:
            confluence = ConfluenceSpace(
                url=url,
                space=space,
                token=_confluence_token(token_file),
                email=email,
                allow_http=allow_http,
                page_size=CONFLUENCE_PAGE_SIZE,
            )
        except (ConfluenceError, OSError) as exc:
            raise fail(str(exc), 2) from None
        _run_ingest([], confluence, recreate=recreate)
    else:
        raise fail("`ingest confluence` needs --url and --space, or --export FOLDER", 2)


def _confluence_token(token_file: Path | None) -> str | None:
    """The token from `--token-file`, else from CONFLUENCE_TOKEN (never from argv)."""
    if token_file is not None:
        return token_file.read_text().strip() or None
    return os.environ.get("CONFLUENCE_TOKEN") or None


def _run_ingest(
    sources: list[FileSource], confluence: ConfluenceSpace | None, *, recreate: bool
) -> None:
    settings = _settings()
    configure_logging("ingest", LogSettings(level="WARNING", format="console"))
    # pypdf warns about every flaw it works around; failures are in the summary table.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    console = Console(stderr=True)
    embedder = _load_embedder(settings, console)
    try:
        report = asyncio.run(
            _ingest(settings, embedder, sources, confluence, recreate=recreate, console=console)
        )
    except (ConnectionError, *_STORE_ERRORS) as exc:
        raise fail(str(exc)) from None
    Console().print(summary_table(report))
    if report.failed:
        raise typer.Exit(1)


async def _ingest(
    settings: MemorySettings,
    embedder: TextEmbedder,
    sources: list[FileSource],
    confluence: ConfluenceSpace | None,
    *,
    recreate: bool,
    console: Console,
) -> IngestReport:
    import httpx

    from tidings.memory.knowledge.confluence import ConfluenceListing

    name = settings.knowledge_collection
    stamp = ModelStamp(embedder.name, embedder.dimension)
    total = IngestReport()
    async with open_qdrant(settings.qdrant) as qdrant:
        if recreate:
            collection = await new_knowledge_collection(qdrant, name, stamp)
        else:
            collection = name
        store = KnowledgeStore(qdrant, collection)
        if not recreate:
            await store.ensure_collection(stamp)
        with _progress(console) as bar:
            task = bar.add_task("ingesting", total=sum(s.total for s in sources) or None)
            ingestor = Ingestor(
                store,
                embedder,
                max_chars=settings.chunk_max_chars,
                overlap_chars=settings.chunk_overlap_chars,
                on_item=lambda source: bar.update(task, advance=1, description=_short(source)),
            )
            for source in sources:
                total.add(
                    await ingestor.ingest(source.root, source.items(), complete=source.complete)
                )
            if confluence is not None:
                async with httpx.AsyncClient(timeout=30, follow_redirects=True) as client:
                    listing = ConfluenceListing(confluence, client)
                    bar.update(task, total=None)
                    report = await ingestor.ingest(
                        confluence.root, listing.items(), complete=lambda: listing.complete
                    )
                    total.add(report)
        if recreate:
            await switch_knowledge_collection(qdrant, name, collection)
    return total


def summary_table(report: IngestReport) -> Table:
    """The end-of-run summary: counts, then every failure with its reason."""
    table = Table(title="Knowledge base ingest", show_header=True, header_style="bold")
    table.add_column("documents", justify="right")
    table.add_column("chunks", justify="right")
    table.add_column("skipped (unchanged)", justify="right")
    table.add_column("deleted", justify="right")
    table.add_column("failed", justify="right")
    table.add_row(
        str(report.documents),
        str(report.chunks),
        str(report.skipped),
        str(report.deleted),
        str(len(report.failed)),
    )
    if not report.failed:
        return table
    failures = Table(title="Failed", show_header=True, header_style="bold red")
    failures.add_column("source")
    failures.add_column("reason")
    for failure in report.failed:
        failures.add_row(failure.source, failure.reason)
    grid = Table.grid()
    grid.add_row(table)
    grid.add_row(failures)
    return grid


def _load_embedder(settings: MemorySettings, console: Console) -> Embedder:
    with console.status(f"loading embedding model {settings.embedding_model}"):
        try:
            return Embedder.load(settings.embedding_model, device=settings.embedding_device)
        except EmbedderError as exc:
            raise fail(str(exc)) from None


@contextmanager
def _progress(console: Console) -> Iterator[Progress]:
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        yield bar


def _short(source: str, width: int = 48) -> str:
    return source if len(source) <= width else "..." + source[-(width - 3) :]
