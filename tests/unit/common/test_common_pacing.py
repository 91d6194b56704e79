"""Fetch pacing: busy wait on traffic, idle wait once the hold has run out."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import REGISTRY

from tidings.common.pacing import FetchPacer, set_fetch_wait
from tidings.common.settings import KafkaSettings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def consumer(wait_ms: int = 10) -> SimpleNamespace:
    """Stands in for a started AIOKafkaConsumer: its fetcher holds the wait it sends."""
    return SimpleNamespace(_fetcher=SimpleNamespace(_fetch_max_wait_ms=wait_ms))


def pacer(clock: Clock, name: str = "test") -> FetchPacer:
    return FetchPacer(name=name, idle_ms=10, busy_ms=3, hold_s=5.0, clock=clock)


def gauge(name: str) -> float | None:
    """The gauge, in ms (it is exported in seconds)."""
    seconds = REGISTRY.get_sample_value("tidings_kafka_fetch_wait_seconds", {"consumer": name})
    return None if seconds is None else round(seconds * 1000, 6)


def test_traffic_switches_to_the_busy_wait_and_the_hold_back_to_idle() -> None:
    clock, target = Clock(), consumer()
    paced = pacer(clock, "switch")
    paced.attach(target)
    assert target._fetcher._fetch_max_wait_ms == 10
    paced.touch()
    assert target._fetcher._fetch_max_wait_ms == 3
    assert paced.busy
    assert gauge("switch") == 3
    clock.now += 4.9
    paced.tick()
    assert target._fetcher._fetch_max_wait_ms == 3
    paced.touch()  # traffic again: the hold starts over
    clock.now += 4.9
    paced.tick()
    assert target._fetcher._fetch_max_wait_ms == 3
    clock.now += 0.2
    paced.tick()
    assert target._fetcher._fetch_max_wait_ms == 10
    assert not paced.busy
    assert gauge("switch") == 10


def test_traffic_before_the_consumer_is_attached_is_not_forgotten() -> None:
    """The consumer starts fetching in the state the pacer is in when it is attached."""
    clock = Clock()
    paced = pacer(clock)
    paced.touch()
    first = consumer()
    paced.attach(first)
    assert first._fetcher._fetch_max_wait_ms == 3
    clock.now += 10
    paced.tick()
    assert first._fetcher._fetch_max_wait_ms == 10
    second = consumer()
    paced.attach(second)
    assert second._fetcher._fetch_max_wait_ms == 10


def test_the_busy_wait_is_never_longer_than_the_idle_one() -> None:
    paced = FetchPacer(name="t", idle_ms=500, busy_ms=3, hold_s=1)
    assert paced.busy_ms == 3
    paced = FetchPacer(name="t", idle_ms=2, busy_ms=3, hold_s=1)
    assert paced.busy_ms == 2
    target = consumer(2)
    paced.attach(target)
    paced.touch()
    assert target._fetcher._fetch_max_wait_ms == 2
    assert not paced.busy  # busy and idle are the same wait: pacing is off


def test_an_aiokafka_without_the_attribute_keeps_the_idle_wait() -> None:
    clock = Clock()
    paced = pacer(clock, "unsupported")
    target = SimpleNamespace(_fetcher=SimpleNamespace())
    assert not set_fetch_wait(target, 3)
    paced.attach(target)
    paced.touch()
    assert not hasattr(target._fetcher, "_fetch_max_wait_ms")
    assert gauge("unsupported") == 10  # reports the wait actually in use


def test_settings_give_the_pacer_its_waits() -> None:
    settings = KafkaSettings(
        broker="tansu", fetch_max_wait_ms=20, fetch_busy_wait_ms=4, fetch_busy_hold_s=2.5
    )
    paced = FetchPacer.from_settings(settings, name="s")
    assert (paced.idle_ms, paced.busy_ms, paced.wait_ms) == (20, 4, 20)


def test_on_apache_kafka_the_pacer_never_touches_the_consumer() -> None:
    """Kafka answers a fetch as soon as a record arrives: no private attribute is set."""
    settings = KafkaSettings(broker="kafka", fetch_max_wait_ms=500, fetch_busy_wait_ms=3)
    paced = FetchPacer.from_settings(settings, name="k")
    target = consumer(wait_ms=123)
    paced.attach(target)
    paced.touch()
    assert (paced.enabled, paced.busy, paced.wait_ms) == (False, False, 500)
    assert target._fetcher._fetch_max_wait_ms == 123  # untouched


def test_a_backlog_keeps_the_idle_wait_until_it_is_read() -> None:
    """Reading a backlog goes at the idle wait whatever the traffic; once caught up, the
    traffic's hold decides again."""
    clock, target = Clock(), consumer()
    paced = pacer(clock, "backlog")
    paced.attach(target)
    paced.backlog(True)
    paced.touch()
    assert target._fetcher._fetch_max_wait_ms == 10
    assert not paced.busy
    clock.now += 1.0
    paced.backlog(False)  # caught up within the hold of the last traffic
    assert target._fetcher._fetch_max_wait_ms == 3
    paced.backlog(True)  # fell behind again
    assert target._fetcher._fetch_max_wait_ms == 10
    clock.now += 4.1
    paced.backlog(False)  # caught up after the hold ran out
    assert target._fetcher._fetch_max_wait_ms == 10
