"""The drill's counting, without processes: the client model and the pass conditions."""

from __future__ import annotations

import json

from tests.chaos.faults import FaultRun, attempts_from_events, interrupted_then_answered
from tests.chaos.report import percentile, summarise, tally
from tests.chaos.users import Ledger, MessageLog, apply_event


def _message(mid: str, posted: float) -> MessageLog:
    return MessageLog(mid, "s1", posted, posted, "gateway-a")


def _answer(message: MessageLog, text: str, at: float, ended: float | None = None) -> None:
    """One token at `at`, then `done` (at `ended`, default the same moment)."""
    apply_event(message, "start", {"attempt": "a1"})
    apply_event(message, "token", {"delta": text})
    message.token_times = [at]
    message.first_token_at = at
    apply_event(message, "done", {"text": text})
    message.ended_at = at if ended is None else ended


def _held(mid: str, posted: float, tokens: list[float], ended: float) -> MessageLog:
    """A message whose answer streamed tokens at `tokens` (one held up) and ended at `ended`."""
    message = _message(mid, posted)
    apply_event(message, "token", {"delta": "a"})
    message.token_times = tokens
    message.first_token_at = tokens[0]
    apply_event(message, "done", {"text": "a"})
    message.ended_at = ended
    return message


def test_reset_drops_partial_text_and_a_clean_answer_is_not_shown_twice() -> None:
    message = _message("m1", 0.0)
    apply_event(message, "start", {"attempt": "a1"})
    apply_event(message, "token", {"delta": "Hel"})
    apply_event(message, "reset", {})
    apply_event(message, "start", {"attempt": "a2"})
    apply_event(message, "token", {"delta": "Hello"})
    apply_event(message, "done", {"text": "Hello"})
    assert (message.resets, message.mismatch, message.terminal) == (1, False, "done")
    assert message.attempts == ["a1", "a2"]


def test_duplicated_tokens_or_a_second_done_count_as_shown_twice() -> None:
    duplicated = _message("m1", 0.0)
    for delta in ("Hi ", "Hi "):
        apply_event(duplicated, "token", {"delta": delta})
    apply_event(duplicated, "done", {"text": "Hi "})
    twice = _message("m2", 0.0)
    apply_event(twice, "done", {"text": "x"})
    apply_event(twice, "done", {"text": "x"})
    ledger = Ledger([duplicated, twice])
    run = FaultRun("f", started_at=-1, injected_at=5, restored_at=6, ended_at=10)
    row = summarise(run, ledger, [run], memory_broker=True)
    assert row.shown_twice == 2
    assert not row.checks["no answer shown twice"]


def test_unanswered_messages_are_lost_unless_a_memory_broker_restart_took_them() -> None:
    answered = _message("ok", 0.0)
    _answer(answered, "fine", 0.5)
    caught = _message("caught", 4.5)  # open when the broker stopped at 5
    fresh = _message("fresh", 8.0)
    _answer(fresh, "fine", 8.4)
    run = FaultRun(
        "broker restart",
        started_at=-1,
        injected_at=5,
        restored_at=7,
        ended_at=10,
        recover_from="restore",
        broker_restart=True,
    )
    ledger = Ledger([answered, caught, fresh])
    memory = summarise(run, ledger, [run], memory_broker=True)
    assert (memory.lost, memory.broker_lost) == (0, 1)
    assert memory.checks["no answer lost"]
    durable = summarise(run, ledger, [run], memory_broker=False)
    assert (durable.lost, durable.broker_lost) == (1, 0)
    assert not durable.checks["no answer lost"]
    assert tally([durable]) == (
        sum(durable.checks.values()),
        len(durable.checks) - sum(durable.checks.values()),
    )


def test_recovery_is_when_touched_answers_move_again() -> None:
    stalled = _held("stalled", 9.0, [9.2, 19.0], 21.0)  # open at the kill (10), next token at 19
    later = _message("later", 12.0)
    _answer(later, "b", 13.0)
    after_restart = _message("after", 22.0)
    _answer(after_restart, "c", 22.5)
    run = FaultRun("responder kill -9", started_at=0, injected_at=10, restored_at=20, ended_at=30)
    ledger = Ledger([stalled, later, after_restart])
    row = summarise(run, ledger, [run], memory_broker=True)
    assert row.recovery_s == 9.0
    assert row.checks["recovered within 15 s"]
    # Nothing answered after the restart: the system never showed it recovered.
    ledger.messages.remove(after_restart)
    assert summarise(run, ledger, [run], memory_broker=True).recovery_s is None


def test_a_kill_that_holds_every_user_is_not_charged_the_restarts_rebalance() -> None:
    # Seen in CI: every user waited on an answer the kill held up (kill at 10, takeover
    # at 19.8), so nobody asked anything until after the restart (20), whose rebalance
    # held the next question until 24.5. The kill's recovery ends when the held-up
    # answers finished; the restart's stall is judged from the restart.
    held = _held("held", 9.0, [9.2, 19.8], 21.0)
    queued = _message("queued", 9.9)
    _answer(queued, "b", 19.8, ended=21.2)
    after_restart = _message("after", 20.5)
    _answer(after_restart, "c", 24.5, ended=26.0)
    run = FaultRun(
        "responder kill -9",
        started_at=0,
        injected_at=10,
        restore_started_at=20,
        restored_at=20.4,
        ended_at=30,
    )
    ledger = Ledger([held, queued, after_restart])
    row = summarise(run, ledger, [run], memory_broker=True)
    # The kill: the held answers finished at 21.0 (11 s); the restart: the question asked
    # after it was answered completely at 26.0 (5.6 s from 20.4).
    assert row.recovery_s == 11.0
    # A question asked in the kill's window is still required to be answered completely.
    in_window = _message("in-window", 12.0)
    _answer(in_window, "d", 19.9, ended=27.0)
    ledger.messages.append(in_window)
    assert summarise(run, ledger, [run], memory_broker=True).recovery_s == 17.0


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0


def _event(schema: str, mid: str, attempt: str) -> bytes:
    return json.dumps({"schema": schema, "message_id": mid, "attempt": attempt}).encode()


def test_a_cut_off_answer_is_attributed_only_when_another_attempt_finished_it() -> None:
    events = [
        (1000, _event("response.start.v1", "m1", "a1")),  # killed mid-answer
        (1001, _event("response.delta.v1", "m1", "a1")),
        (1002, _event("response.start.v1", "m2", "b1")),  # finished before the kill
        (1003, _event("response.done.v1", "m2", "b1")),
        (1004, _event("response.start.v1", "m3", "c1")),  # cut off, never answered again
        (1500, b'{"schema": "chaos.poison"'),
        (9000, _event("response.start.v1", "m1", "a2")),  # the redelivery
        (9001, _event("response.done.v1", "m1", "a2")),
        (9002, _event("response.start.v1", "m4", "d1")),  # a first attempt after the kill
        (9003, _event("response.done.v1", "m4", "d1")),
    ]
    attempts = attempts_from_events(events)
    assert [a.attempt for a in attempts["m1"]] == ["a1", "a2"]
    answered = {("m1", "a2"), ("m2", "b1"), ("m4", "d1")}
    assert interrupted_then_answered(attempts, 5000, answered) == ["m1"]
    # The new attempt must be one a responder logged as answered (not just any done event).
    assert interrupted_then_answered(attempts, 5000, {("m2", "b1")}) == []
    # An attempt that started after the kill is not one the kill cut off.
    assert interrupted_then_answered(attempts, 500, answered) == []
