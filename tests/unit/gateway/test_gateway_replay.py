"""The replay buffer keeps what late clients need, within bounds."""

from __future__ import annotations

from gateway_fakes import Positions, delta, done, start

from tidings.gateway.replay import ReplayBuffer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_snapshot_keeps_kafka_order_and_ids() -> None:
    buffer = ReplayBuffer(max_events_per_session=100, max_sessions=10, max_age_s=60)
    kafka = Positions(partition=2)
    items = [kafka.wrap(start()), kafka.wrap(delta(0, "Hel")), kafka.wrap(delta(1, "lo"))]
    for item in items:
        buffer.append(item)

    snapshot = buffer.snapshot(items[0].session_id)

    assert snapshot == items
    assert [item.id for item in snapshot] == ["2-0", "2-1", "2-2"]
    assert buffer.snapshot("someone-else") == []


def test_a_long_answer_keeps_only_the_newest_events() -> None:
    buffer = ReplayBuffer(max_events_per_session=3, max_sessions=10, max_age_s=60)
    kafka = Positions()
    items = [kafka.wrap(delta(seq, f"w{seq}")) for seq in range(5)]
    for item in items:
        buffer.append(item)

    assert buffer.snapshot(items[0].session_id) == items[-3:]


def test_least_recently_active_session_is_evicted_first() -> None:
    buffer = ReplayBuffer(max_events_per_session=10, max_sessions=2, max_age_s=60)
    kafka = Positions()
    buffer.append(kafka.wrap(start(session_id="session-a")))
    buffer.append(kafka.wrap(start(session_id="session-b")))
    # session-a becomes the most recently active one, so session-b is the one to go.
    buffer.append(kafka.wrap(delta(0, "x", session_id="session-a")))
    buffer.append(kafka.wrap(start(session_id="session-c")))

    assert len(buffer) == 2
    assert buffer.snapshot("session-b") == []
    assert len(buffer.snapshot("session-a")) == 2
    assert len(buffer.snapshot("session-c")) == 1


def test_old_events_and_idle_sessions_expire() -> None:
    clock = Clock()
    buffer = ReplayBuffer(max_events_per_session=10, max_sessions=10, max_age_s=30, clock=clock)
    kafka = Positions()
    buffer.append(kafka.wrap(start(session_id="idle-session"), at=clock.now))
    buffer.append(kafka.wrap(start(session_id="busy-session"), at=clock.now))
    clock.now += 20
    fresh = kafka.wrap(done("Hi", session_id="busy-session"), at=clock.now)
    buffer.append(fresh)
    clock.now += 15  # the first two events are now 35 s old, the last one 15 s

    assert buffer.snapshot("idle-session") == []
    assert buffer.snapshot("busy-session") == [fresh]
    assert len(buffer) == 1


def test_a_session_is_bounded_by_bytes_too_but_keeps_its_newest_event() -> None:
    from dataclasses import replace

    buffer = ReplayBuffer(
        max_events_per_session=100, max_sessions=10, max_age_s=60, max_bytes_per_session=250
    )
    kafka = Positions()
    items = [replace(kafka.wrap(delta(seq, f"w{seq}")), size=100) for seq in range(4)]
    for item in items:
        buffer.append(item)
    huge = replace(kafka.wrap(done("all")), size=10_000)

    assert buffer.snapshot(items[0].session_id) == items[2:]
    buffer.append(huge)
    assert buffer.snapshot(items[0].session_id) == [huge]
