"""When the fan-out counts as reading a backlog (and so fetches with the idle wait)."""

from __future__ import annotations

from aiokafka import TopicPartition

from tidings.gateway.fanout import BACKLOG_RECORDS, behind

A, B = TopicPartition("answers", 0), TopicPartition("answers", 1)


def test_a_partition_far_behind_its_high_watermark_is_a_backlog() -> None:
    assert behind({A: 1000, B: 0}, {A: 1000, B: BACKLOG_RECORDS + 1})
    assert not behind({A: 1000, B: 1}, {A: 1000, B: BACKLOG_RECORDS + 1})


def test_a_few_fetches_worth_behind_is_caught_up() -> None:
    assert not behind({A: 5000 - BACKLOG_RECORDS}, {A: 5000})


def test_an_unknown_high_watermark_or_a_reader_ahead_of_it_is_not_behind() -> None:
    # Tansu reports the last batch's first offset + 1 as the end, so a reader can be past it.
    assert not behind({A: 0}, {A: None})
    assert not behind({A: 900}, {A: 800})
