"""Subscribers see replayed then live events, each exactly once, and never leak."""

from __future__ import annotations

import asyncio

from gateway_fakes import SESSION, Positions, delta, start

from tidings.gateway.hub import DUPLICATE, LOG_RESTARTED, FanoutHub, Mark
from tidings.gateway.replay import ReplayBuffer, StreamEvent


def new_hub(*, max_pending: int = 100) -> FanoutHub:
    buffer = ReplayBuffer(max_events_per_session=1000, max_sessions=100, max_age_s=600)
    return FanoutHub(buffer, max_pending=max_pending)


async def test_snapshot_then_live_without_gap_or_duplicate() -> None:
    hub = new_hub()
    kafka = Positions()
    before = [kafka.wrap(start()), kafka.wrap(delta(0, "a"))]
    for item in before:
        hub.dispatch(item)

    subscription = hub.subscribe(SESSION)
    after = kafka.wrap(delta(1, "b"))
    hub.dispatch(after)

    assert subscription.snapshot == before
    assert await subscription.next_batch() == [after]


async def test_subscribing_while_events_stream_in_loses_and_repeats_nothing() -> None:
    hub = new_hub(max_pending=1000)
    kafka = Positions()
    sent: list[StreamEvent] = []

    async def producer() -> None:
        for seq in range(200):
            item = kafka.wrap(delta(seq, str(seq)))
            sent.append(item)
            hub.dispatch(item)
            await asyncio.sleep(0)

    task = asyncio.create_task(producer())
    for _ in range(57):
        await asyncio.sleep(0)
    subscription = hub.subscribe(SESSION)
    await task
    subscription.close()
    received = list(subscription.snapshot)
    while batch := await subscription.next_batch():
        received.extend(batch)

    assert 0 < len(subscription.snapshot) < 200
    assert received == sent


async def test_other_sessions_events_are_not_delivered() -> None:
    hub = new_hub()
    kafka = Positions()
    subscription = hub.subscribe(SESSION)
    hub.dispatch(kafka.wrap(start(session_id="other-session")))
    mine = kafka.wrap(start())
    hub.dispatch(mine)

    assert await subscription.next_batch() == [mine]


async def test_close_wakes_a_waiting_stream_and_unregisters_it() -> None:
    hub = new_hub()
    subscription = hub.subscribe(SESSION)
    waiter = asyncio.create_task(subscription.next_batch())
    await asyncio.sleep(0)
    assert hub.subscriber_count(SESSION) == 1

    subscription.close()

    assert await asyncio.wait_for(waiter, 1) == []
    assert hub.subscriber_count() == 0


async def test_hub_close_ends_every_stream_after_what_it_already_has() -> None:
    hub = new_hub()
    kafka = Positions()
    first = hub.subscribe(SESSION)
    second = hub.subscribe("session-0002")
    pending = kafka.wrap(delta(0, "last words"))
    hub.dispatch(pending)

    hub.close()

    assert await first.next_batch() == [pending]
    assert await first.next_batch() == []
    assert await second.next_batch() == []
    assert hub.subscribe(SESSION).closed
    assert hub.subscriber_count() == 0


async def test_a_client_too_far_behind_is_cut_off() -> None:
    hub = new_hub(max_pending=3)
    kafka = Positions()
    slow = hub.subscribe(SESSION)
    for seq in range(5):
        hub.dispatch(kafka.wrap(delta(seq, "x")))

    assert slow.overflowed
    assert slow.closed
    assert hub.subscriber_count() == 0
    assert len(await slow.next_batch()) == 3


def test_events_read_again_after_a_reader_restart_are_ignored() -> None:
    hub = FanoutHub(
        ReplayBuffer(max_events_per_session=100, max_sessions=100, max_age_s=600),
        max_pending=100,
    )
    kafka = Positions()
    first = [kafka.wrap(start()), kafka.wrap(delta(0, "a"))]
    for item in first:
        hub.dispatch(item)

    assert hub.high_water(0) == 1
    assert hub.dispatch(first[1]) == -1  # the same position again
    assert len(hub.snapshot(first[0].session_id)) == 2
    hub.reading_from(0, 0)  # the broker lost its log and starts over
    assert hub.high_water(0) == -1
    assert hub.dispatch(first[0]) == 0


def test_a_different_record_at_or_below_the_mark_means_the_log_started_over() -> None:
    hub = new_hub()
    kafka = Positions(clock_ms=1_700_000_000_000)
    old = [kafka.wrap(start()), kafka.wrap(delta(0, "a")), kafka.wrap(delta(1, "b"))]
    for item in old:
        hub.dispatch(item)
    kafka.broker_restarted()
    new = [
        kafka.wrap(start("m2")),
        kafka.wrap(delta(0, "x", "m2")),
        kafka.wrap(delta(1, "y", "m2")),
    ]

    assert hub.dispatch(old[2]) == DUPLICATE  # the marked record itself, read again
    assert hub.dispatch(new[2]) == LOG_RESTARTED  # same position, another record
    assert hub.dispatch(new[0]) == LOG_RESTARTED  # below the mark
    assert hub.mark(0) == Mark(2, old[2].timestamp)
    assert hub.snapshot(SESSION) == old

    hub.reading_from(0, 0)  # the fan-out reads the new log from its start
    assert [hub.dispatch(item) for item in new] == [0, 0, 0]
    assert hub.snapshot(SESSION) == old + new
    assert hub.mark(0) == Mark(2, new[2].timestamp)


def test_a_subscription_keeps_the_marks_of_its_snapshot() -> None:
    hub = new_hub()
    kafka = Positions(clock_ms=1_700_000_000_000)
    first = kafka.wrap(start())
    hub.dispatch(first)
    subscription = hub.subscribe(SESSION)
    hub.dispatch(kafka.wrap(delta(0, "later")))

    assert subscription.mark(0) == Mark(0, first.timestamp)
    assert subscription.mark(1) is None
    assert hub.high_water(0) == 1


def test_activity_is_a_stream_opening_or_an_event_reaching_one() -> None:
    """What makes the fan-out fetch with the busy wait: a client waiting here, not traffic
    nobody on this replica is watching (202-only posts, other replicas' streams)."""
    touches: list[str] = []
    buffer = ReplayBuffer(max_events_per_session=1000, max_sessions=100, max_age_s=600)
    hub = FanoutHub(buffer, max_pending=100, on_activity=lambda: touches.append("touch"))
    kafka = Positions()
    hub.dispatch(kafka.wrap(start()))
    assert touches == []  # buffered for later readers, nobody waiting
    subscription = hub.subscribe(SESSION)
    assert touches == ["touch"]
    hub.dispatch(kafka.wrap(delta(0, "a")))
    assert touches == ["touch", "touch"]
    subscription.close()
    hub.dispatch(kafka.wrap(delta(1, "b")))
    assert touches == ["touch", "touch"]
