"""Where a reconnecting client picks up: exactly after its Last-Event-ID, or a reset."""

from __future__ import annotations

from gateway_fakes import Positions, delta, done, start

from tidings.gateway.answer import AnswerStream
from tidings.gateway.hub import Mark
from tidings.gateway.replay import EventId, StreamEvent, parse_event_id
from tidings.gateway.resume import CLOCK_SKEW_MS, Awaited, plan_resume

T0 = 1_700_000_000_000


def answer(positions: Positions, message_id: str = "m1", text: str = "One two three.") -> list:  # type: ignore[type-arg]
    words = [word + " " for word in text.split(" ")]
    words[-1] = words[-1].rstrip()
    return [
        positions.wrap(start(message_id)),
        *[positions.wrap(delta(seq, word, message_id)) for seq, word in enumerate(words)],
        positions.wrap(done(text, message_id)),
    ]


def marked(items: list[StreamEvent]) -> Mark:
    return Mark(items[-1].offset, items[-1].timestamp)


def sent_after(plan_prime: list[StreamEvent], replay: list[StreamEvent]) -> list[str]:
    stream = AnswerStream("m2")
    for item in plan_prime:
        stream.feed(item)
    return [m.event for item in replay for m in stream.feed(item)]


def test_event_ids_parse_with_and_without_the_record_timestamp() -> None:
    assert parse_event_id("2-15") == EventId(2, 15)
    assert parse_event_id(" 0-0 ") == EventId(0, 0)
    assert parse_event_id(f"2-15-{T0}") == EventId(2, 15, T0)
    bad = ["", "2", "-1-3", "a-1", "1-b", "1-2-", "1-2-x", "1-2-3-4", "9999999-1"]
    bad += ["1-" + "9" * 20, "1-2-" + "9" * 20, "\u0661-\u0662"]  # Arabic-Indic digits
    for value in bad:
        assert parse_event_id(value) is None, value


def test_ids_carry_the_record_timestamp_and_name_exactly_that_event() -> None:
    [with_time] = [Positions(3, clock_ms=T0).wrap(start())]
    [without] = [Positions(3).wrap(start())]

    assert with_time.id == f"3-0-{T0}"
    assert without.id == "3-0"
    assert with_time.is_at(EventId(3, 0, T0))
    assert with_time.is_at(EventId(3, 0))  # a position-only id: same position is enough
    assert not with_time.is_at(EventId(3, 0, T0 + 1))
    assert not with_time.is_at(EventId(3, 1, T0))


def test_no_id_replays_everything() -> None:
    events = answer(Positions(clock_ms=T0))

    plan = plan_resume(events, None, lambda _: None)

    assert plan.replay == events and not plan.prime and not plan.stale


def test_an_id_in_the_buffer_resumes_exactly_after_it() -> None:
    events = answer(Positions(partition=1, clock_ms=T0))

    plan = plan_resume(events, events[2].id, lambda _: marked(events))
    stream = AnswerStream("m1")
    for item in plan.prime:
        stream.feed(item)
    sent = [message for item in plan.replay for message in stream.feed(item)]

    assert not plan.stale
    assert [m.event for m in sent] == ["token", "done"]
    assert sent[0].data["delta"] == "three."


def test_after_a_broker_lost_its_log_an_id_names_the_event_of_its_own_log() -> None:
    kafka = Positions(clock_ms=T0)
    before = answer(kafka, "m1", "Before the restart.")
    kafka.broker_restarted()
    after = answer(kafka, "m2", "After it, again.")
    buffered = before + after  # same offsets 0-4 twice, in the order they were read
    assert [i.offset for i in before] == [i.offset for i in after]

    new = plan_resume(buffered, after[2].id, lambda _: marked(after))
    old = plan_resume(buffered, before[2].id, lambda _: marked(after))

    assert not new.stale and new.prime == buffered[: len(before) + 3]
    assert sent_after(new.prime, new.replay) == ["token", "done"]  # not the answer again
    assert not old.stale and old.replay == before[3:] + after


def test_a_position_only_id_naming_events_of_two_logs_is_stale() -> None:
    kafka = Positions(clock_ms=T0)
    before = answer(kafka, "m1")
    kafka.broker_restarted()
    after = answer(kafka, "m2")

    ambiguous = plan_resume(before + after, "0-2", lambda _: marked(after))
    unique = plan_resume(after, "0-2", lambda _: marked(after))

    assert ambiguous.stale and ambiguous.replay == before + after
    assert not unique.stale and unique.replay == after[3:]


def test_an_id_ahead_of_this_replica_holds_events_until_its_own_event_arrives() -> None:
    positions = Positions(clock_ms=T0)
    events = answer(positions)
    seen_here = events[:2]  # this replica has read start and the first token only

    plan = plan_resume(seen_here, events[3].id, lambda _: marked(seen_here))

    assert not plan.stale and plan.replay == [] and plan.prime == []
    assert plan.awaiting == parse_event_id(events[3].id) and plan.held == seen_here
    assert [plan.check(item) for item in events[2:]] == [
        Awaited.HOLD,
        Awaited.FOUND,
        Awaited.MISSED,
    ]
    assert plan.settle() == seen_here and plan.awaiting is None


def test_another_event_at_the_awaited_position_means_the_id_is_from_another_log() -> None:
    kafka = Positions(clock_ms=T0)
    old = answer(kafka, "m1")  # what the client saw, on a replica that read the old log
    kafka.broker_restarted(down_ms=500)  # restarted so fast that clocks cannot tell
    new = answer(kafka, "m2")
    here = new[:2]  # this replica only reads the new log, and is behind on it

    plan = plan_resume(here, old[3].id, lambda _: marked(here))

    assert plan.awaiting is not None
    assert [plan.check(item) for item in new[2:4]] == [Awaited.HOLD, Awaited.MISSED]


def test_an_id_older_than_the_log_this_replica_reads_is_stale_at_once() -> None:
    kafka = Positions(clock_ms=T0)
    old = answer(kafka, "m1", "One two three four five six seven.")
    kafka.broker_restarted(down_ms=CLOCK_SKEW_MS + 5_000)
    new = answer(kafka, "m2")  # shorter: the old id's offset is ahead of it

    plan = plan_resume(new, old[7].id, lambda _: marked(new))

    assert old[7].offset > new[-1].offset
    assert plan.stale and plan.awaiting is None and plan.replay == new


def test_an_evicted_unknown_or_foreign_id_is_stale() -> None:
    events = answer(Positions(clock_ms=T0))[2:]  # the start and first token were evicted
    mark = marked(events)

    for last_id in ("0-0", "0-1", f"0-0-{T0}", "not-an-id", "7-3", f"0-{mark.offset + 10**6}"):
        plan = plan_resume(events, last_id, lambda p: mark if p == 0 else None)
        assert plan.stale, last_id
        assert plan.replay == events
