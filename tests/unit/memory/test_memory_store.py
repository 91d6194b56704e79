"""The Qdrant store, on qdrant-client's local mode in a temporary folder (nothing to run)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from qdrant_client import QdrantClient, models

from tidings.common.settings import QdrantSettings
from tidings.memory.collection import (
    EmbeddingModelMismatchError,
    ModelStamp,
    alias_target,
    create_collection,
    new_collection_name,
    point_alias,
)
from tidings.memory.store import VectorSizeMismatchError, open_store
from tidings.memory.turns import Turn

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
FAKE = ModelStamp("fake-4d", 4)


def turn(
    role: str = "user",
    message_id: str = "m1",
    *,
    session_id: str = "s1",
    user: str | None = "alice",
    text: str = "Hi",
    seconds: float = 0,
) -> Turn:
    return Turn(
        role=role,  # type: ignore[arg-type]
        session_id=session_id,
        message_id=message_id,
        text=text,
        ts=T0 + timedelta(seconds=seconds),
        user=user,
        source="faq" if role == "assistant" else None,
        attempt="a1" if role == "assistant" else None,
    )


def vec(i: int) -> list[float]:
    return [1.0, float(i % 7), 0.5, float(i % 3)]


@pytest.fixture
def settings(tmp_path: Path) -> QdrantSettings:
    return QdrantSettings(path=tmp_path / "qdrant", collection="turns")


async def test_new_collection_uses_the_model_size_and_cosine_and_survives_reopening(
    settings: QdrantSettings,
) -> None:
    async with open_store(settings, FAKE) as store:
        await store.upsert([turn()], [vec(1)])

    async with open_store(settings, FAKE) as store:
        assert await store.count() == 1

    client = QdrantClient(path=str(settings.path))
    try:
        info = client.get_collection("turns")  # through the alias
        params = info.config.params.vectors
        assert isinstance(params, models.VectorParams)
        assert (params.size, params.distance) == (4, models.Distance.COSINE)
        assert info.config.metadata == {"embedding_model": "fake-4d", "dimension": 4}
        [alias] = client.get_aliases().aliases
        assert alias.alias_name == "turns" and alias.collection_name.startswith("turns_")
    finally:
        client.close()


async def test_refuses_a_collection_built_by_another_model_and_releases_the_folder(
    settings: QdrantSettings,
) -> None:
    async with open_store(settings, FAKE) as store:
        await store.upsert([turn()], [vec(1)])

    with pytest.raises(VectorSizeMismatchError, match=r"4-dimensional.*produces 384"):
        async with open_store(settings, ModelStamp("minilm", 384)):
            pass
    # Same size, another model: refused too, with what to do about it.
    with pytest.raises(EmbeddingModelMismatchError, match=r"built with.*'fake-4d'.*rebuild"):
        async with open_store(settings, ModelStamp("other-4d", 4)):
            pass

    # The failed start closed its client: the folder is usable and the data untouched.
    async with open_store(settings, FAKE) as store:
        assert await store.count() == 1


async def test_writing_the_same_turn_again_overwrites_it(settings: QdrantSettings) -> None:
    async with open_store(settings, FAKE) as store:
        await store.upsert([turn("assistant", text="First try")], [vec(1)])
        await store.upsert([turn("assistant", text="Second try")], [vec(2)])

        turns = await store.session_turns("s1")

    assert [t.text for t in turns] == ["Second try"]


async def test_session_turns_come_back_oldest_first_and_only_for_that_session(
    settings: QdrantSettings,
) -> None:
    written = [
        turn("assistant", "m2", text="A2", seconds=30),
        turn("user", "m1", text="Q1", seconds=0),
        turn("user", "m2", text="Q2", seconds=20),
        turn("assistant", "m1", text="A1", seconds=0),  # same instant as its question
        turn("user", "m9", session_id="other", text="elsewhere"),
    ]
    async with open_store(settings, FAKE) as store:
        await store.upsert(written, [vec(i) for i in range(len(written))])

        turns = await store.session_turns("s1")

    assert [t.text for t in turns] == ["Q1", "A1", "Q2", "A2"]
    assert turns[1].source == "faq" and turns[1].attempt == "a1"


async def test_long_sessions_are_read_past_one_page(settings: QdrantSettings) -> None:
    many = [turn("user", f"m{i}", text=f"q{i}", seconds=i) for i in range(7)]
    async with open_store(settings, FAKE) as store:
        await store.upsert(many, [vec(i) for i in range(7)])

        turns = await store.session_turns("s1", page_size=3)

    assert [t.text for t in turns] == [f"q{i}" for i in range(7)]


async def test_answer_stored_before_its_question_gets_the_user_afterwards(
    settings: QdrantSettings,
) -> None:
    answer = turn("assistant", user=None, text="Hello!")
    async with open_store(settings, FAKE) as store:
        await store.upsert([answer], [vec(1)])
        assert await store.link_users([answer]) == 0

        question = turn("user", user="alice")
        await store.upsert([question], [vec(2)])
        assert await store.link_users([question]) == 1

        users = {t.role: t.user for t in await store.session_turns("s1")}

    assert users == {"user": "alice", "assistant": "alice"}


async def test_answer_stored_after_its_question_gets_the_user(settings: QdrantSettings) -> None:
    async with open_store(settings, FAKE) as store:
        await store.upsert([turn("user", user="alice")], [vec(1)])
        answer = turn("assistant", user=None)
        await store.upsert([answer], [vec(2)])
        assert await store.link_users([answer]) == 1

        users = {t.role: t.user for t in await store.session_turns("s1")}

    assert users == {"user": "alice", "assistant": "alice"}


async def test_anonymous_questions_leave_answers_anonymous(settings: QdrantSettings) -> None:
    async with open_store(settings, FAKE) as store:
        written = [turn("user", user=None), turn("assistant", user=None)]
        await store.upsert(written, [vec(1), vec(2)])
        assert await store.link_users(written) == 0

        users = {t.role: t.user for t in await store.session_turns("s1")}

    assert users == {"user": None, "assistant": None}


async def test_a_collection_from_before_aliases_is_used_then_replaced_by_an_alias(
    settings: QdrantSettings,
) -> None:
    client = QdrantClient(path=str(settings.path))
    client.create_collection(
        "turns", vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE)
    )
    client.close()

    async with open_store(settings, FAKE) as store:  # no metadata: only the size is checked
        await store.upsert([turn()], [vec(1)])
        qdrant = store._qdrant
        fresh = new_collection_name("turns")
        await qdrant.run(create_collection, qdrant.client, fresh, FAKE, {}, local=True)
        previous = await qdrant.run(point_alias, qdrant.client, "turns", fresh)
        assert previous == "turns"
        assert await qdrant.run(alias_target, qdrant.client, "turns") == fresh
        assert await store.count() == 0  # readers of "turns" now see the new collection

    client = QdrantClient(path=str(settings.path))
    try:
        assert {c.name for c in client.get_collections().collections} == {fresh}
    finally:
        client.close()
