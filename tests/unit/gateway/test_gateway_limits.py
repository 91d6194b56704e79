"""Token buckets, stream caps and the session owner map."""

from __future__ import annotations

import pytest

from tidings.gateway.limits import RateLimiter, StreamCap, retry_after
from tidings.gateway.owners import OwnershipMap


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_allowed_then_refused_until_tokens_refill() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=2.0, burst=3, clock=clock)

    assert [limiter.take("alice") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.take("alice")
    assert wait == pytest.approx(0.5)
    assert retry_after(wait) == "1"
    assert limiter.take("bob") == 0.0  # another subject has its own bucket
    clock.now += 0.5
    assert limiter.take("alice") == 0.0


def test_the_bucket_table_is_bounded() -> None:
    limiter = RateLimiter(rate_per_s=1.0, burst=1, max_keys=2, clock=Clock())
    for key in ("a", "b", "c"):
        limiter.take(key)

    assert len(limiter._buckets) == 2


def test_stream_cap_counts_per_key_and_releases() -> None:
    cap = StreamCap(2)

    assert cap.acquire("k") and cap.acquire("k")
    assert not cap.acquire("k")
    assert cap.acquire("other")
    cap.release("k")
    assert cap.acquire("k")
    cap.release("k")
    cap.release("k")
    assert cap.open_streams("k") == 0


def test_the_first_owner_wins_and_the_map_is_bounded() -> None:
    owners = OwnershipMap(max_sessions=2)
    owners.record("s1", "alice")
    owners.record("s1", "mallory")
    owners.record("s-anon", None)

    assert owners.owner("s1") == "alice"
    assert owners.owner("s-anon") is None
    assert owners.claim("s1", "alice") and not owners.claim("s1", "mallory")
    assert owners.claim("s2", "bob")
    assert owners.owner("s1") == "alice"  # used again: now the most recent
    owners.record("s3", "carol")
    assert len(owners) == 2
    assert owners.owner("s1") == "alice"  # recently used, kept
    assert owners.owner("s2") is None  # least recently used, forgotten


async def test_waiting_for_an_owner_gives_up_after_the_bound() -> None:
    owners = OwnershipMap(10)

    assert await owners.wait_for_owner("unknown", 0.05) is None
    owners.record("known", "alice")
    assert await owners.wait_for_owner("known", 5) == "alice"
