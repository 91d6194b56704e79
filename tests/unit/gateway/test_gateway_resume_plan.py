"""Where a reconnecting client picks up: exactly after its Last-Event-ID, or a reset."""

from __future__ import annotations

from gateway_fakes import Positions, delta, done, start

from tidings.gateway.answer import AnswerStream
from tidings.gateway.replay import parse_event_id
from tidings.gateway.resume import plan_resume


def answer(positions: Positions) -> list:  # type: ignore[type-arg]
    return [
        positions.wrap(start()),
        positions.wrap(delta(0, "One ")),
        positions.wrap(delta(1, "two ")),
        positions.wrap(delta(2, "three.")),
        positions.wrap(done("One two three.")),
    ]


def test_event_ids_parse_only_when_they_are_kafka_positions() -> None:
    assert parse_event_id("2-15") == (2, 15)
    assert parse_event_id(" 0-0 ") == (0, 0)
    for bad in ("", "2", "-1-3", "a-1", "1-b", "1-2-3", "9999999-1", "1-" + "9" * 20):
        assert parse_event_id(bad) is None


def test_no_id_replays_everything() -> None:
    events = answer(Positions())

    plan = plan_resume(events, None, lambda _: None)

    assert plan.replay == events and not plan.prime and not plan.stale


def test_an_id_in_the_buffer_resumes_exactly_after_it() -> None:
    events = answer(Positions(partition=1))

    plan = plan_resume(events, events[2].id, lambda _: events[-1].offset)
    stream = AnswerStream("m1")
    for item in plan.prime:
        stream.feed(item)
    sent = [message for item in plan.replay for message in stream.feed(item)]

    assert not plan.stale
    assert [m.event for m in sent] == ["token", "done"]
    assert sent[0].data["delta"] == "three."


def test_an_id_ahead_of_this_replica_waits_for_the_live_events_after_it() -> None:
    positions = Positions()
    events = answer(positions)
    seen_here = events[:2]  # this replica has read start and the first token only

    plan = plan_resume(seen_here, events[3].id, lambda _: seen_here[-1].offset)

    assert not plan.stale and plan.replay == [] and plan.prime == seen_here
    assert [plan.skips(item) for item in events[2:]] == [True, True, False]


def test_an_evicted_unknown_or_foreign_id_is_stale() -> None:
    events = answer(Positions())[2:]  # the start and first token were evicted
    high_water = events[-1].offset

    for last_id in ("0-0", "0-1", "not-an-id", "7-3", f"0-{high_water + 10**6}"):
        plan = plan_resume(events, last_id, lambda p: high_water if p == 0 else None)
        assert plan.stale, last_id
        assert plan.replay == events
