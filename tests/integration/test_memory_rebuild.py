"""`tidings memory rebuild` after an embedding-model change, against the real broker.

The collection was built by another model: the worker refuses it with a clear message.
A rebuild replays the topics into a fresh collection with the configured model, moves the
alias to it and drops the old one; the worker then starts and serves the history.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from qdrant_client import QdrantClient
from typer.testing import CliRunner

from tidings.common.events import ResponseDelta, ResponseDone, UserMessage, new_id
from tidings.common.kafka import ensure_topics, kafka_producer, publish
from tidings.common.memory_api import SessionMessages
from tidings.common.settings import KafkaSettings, QdrantSettings
from tidings.memory import cli
from tidings.memory.collection import EmbeddingModelMismatchError, ModelStamp
from tidings.memory.embedder import Embedder
from tidings.memory.rebuild import rebuild
from tidings.memory.service import MemoryService
from tidings.memory.settings import MemorySettings
from tidings.memory.store import open_store
from tidings.memory.turns import Turn

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(kafka_settings: KafkaSettings, tmp_path: Path) -> MemorySettings:
    return MemorySettings(
        host="127.0.0.1",
        port=0,
        group_id=f"{kafka_settings.topic_prefix}memory",
        batch_wait_ms=50,
        kafka=kafka_settings,
        qdrant=QdrantSettings(path=tmp_path / "qdrant", collection="rebuild_memory"),
    )


async def publish_history(kafka: KafkaSettings, session_id: str) -> list[str]:
    message_ids = [new_id() for _ in range(3)]
    async with kafka_producer(kafka, name="test") as producer:
        for n, message_id in enumerate(message_ids):
            await publish(
                producer,
                kafka.user_messages_topic,
                UserMessage(
                    message_id=message_id, session_id=session_id, user="carol", text=f"Q{n}"
                ),
                key=session_id,
            )
            for event in (
                ResponseDelta(
                    message_id=message_id, session_id=session_id, attempt="a", seq=0, text="A"
                ),
                ResponseDone(
                    message_id=message_id,
                    session_id=session_id,
                    attempt="a",
                    text=f"A{n}",
                    source="llm",
                ),
            ):
                await publish(producer, kafka.model_responses_topic, event, key=session_id)
        await producer.send_and_wait(kafka.user_messages_topic, b"not json", key=b"x")
    return message_ids


async def test_rebuild_switches_to_a_collection_of_the_new_model(
    settings: MemorySettings, embedder: Embedder
) -> None:
    kafka = settings.kafka
    session_id = new_id()
    await ensure_topics(kafka)
    message_ids = await publish_history(kafka, session_id)
    old = ModelStamp("old-model", embedder.dimension)
    async with open_store(settings.qdrant, old) as store:  # as the previous model left it
        await store.upsert(
            [Turn.from_payload(_payload(session_id, message_ids[0]))], [[0.1] * old.dimension]
        )

    with pytest.raises(EmbeddingModelMismatchError, match=r"old-model.*tidings memory rebuild"):
        async with MemoryService(settings, embedder=embedder):
            pass

    progress: list[tuple[int, int]] = []
    report = await rebuild(
        settings, embedder, progress=lambda done, total: progress.append((done, total))
    )

    assert (report.turns, report.rejected) == (6, 1)
    assert report.previous is not None and report.previous.startswith("rebuild_memory_")
    assert sum(done for done, _ in progress) == report.records == 3 + 6 + 1
    client = QdrantClient(path=str(settings.qdrant.path))
    try:
        [alias] = client.get_aliases().aliases
        assert (alias.alias_name, alias.collection_name) == ("rebuild_memory", report.collection)
        collections = {c.name for c in client.get_collections().collections}
        assert collections == {report.collection}  # the old collection was dropped
        info = client.get_collection("rebuild_memory")
        assert info.config.metadata == {
            "embedding_model": embedder.name,
            "dimension": embedder.dimension,
        }
    finally:
        client.close()

    async with (
        MemoryService(settings, embedder=embedder) as service,  # accepted now
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}") as http,
    ):
        response = await http.get(f"/sessions/{session_id}/messages", params={"user": "carol"})
    history = SessionMessages.model_validate_json(response.content)
    assert [m.text for m in history.messages] == ["Q0", "A0", "Q1", "A1", "Q2", "A2"]


def test_rebuild_command_refuses_politely_while_the_folder_is_in_use(
    settings: MemorySettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder: Embedder
) -> None:
    monkeypatch.setenv("QDRANT_PATH", str(settings.qdrant.path))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", settings.kafka.bootstrap_servers)
    monkeypatch.setenv("KAFKA_TOPIC_PREFIX", settings.kafka.topic_prefix)
    monkeypatch.setattr(cli.Embedder, "load", classmethod(lambda *_, **__: embedder))
    holder = QdrantClient(path=str(settings.qdrant.path))  # a running worker, say
    try:
        result = CliRunner().invoke(cli.memory_app, ["rebuild"])
    finally:
        holder.close()

    assert result.exit_code == 1
    assert "in use by another process" in result.output
    assert "QDRANT_URL" in result.output


def _payload(session_id: str, message_id: str) -> dict[str, object]:
    return {
        "role": "user",
        "session_id": session_id,
        "message_id": message_id,
        "text": "Q0",
        "ts": "2026-05-01T12:00:00+00:00",
        "user": "carol",
    }
