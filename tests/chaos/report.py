"""Counting what the users saw, per fault: the table, the pass conditions and the closing line."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tests.chaos.faults import FaultRun
from tests.chaos.users import Ledger, MessageLog

RECOVERY_BOUND_S = 15.0


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of `values`, None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class FaultRow:
    """The counts of one fault's phase, and its pass conditions."""

    name: str
    accepted: int = 0
    refused: int = 0
    completed: int = 0
    completed_late: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    broker_lost: int = 0
    shown_twice: int = 0
    never_ended: int = 0
    resets: int = 0
    resumes: int = 0
    ttft: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    recovery_s: float | None = None
    dead_lettered: str = "-"
    checks: dict[str, bool] = field(default_factory=dict)
    log_checks: dict[str, bool] = field(default_factory=dict)
    lost_ids: list[str] = field(default_factory=list)
    twice_ids: list[str] = field(default_factory=list)
    never_ended_ids: list[str] = field(default_factory=list)


def _found(message: MessageLog) -> bool:
    return message.terminal == "done" or message.recovered_by is not None


def _open_at(message: MessageLog, moment: float) -> bool:
    return message.posted_at < moment and (message.ended_at is None or message.ended_at > moment)


def broker_lost(message: MessageLog, runs: list[FaultRun], memory_broker: bool) -> bool:
    """Lost with the broker's memory: accepted before a restart of a memory-mode broker and
    not answered before it went down."""
    if not memory_broker or _found(message):
        return False
    return any(
        (
            run.broker_restart
            and message.posted_at < run.restored_at
            and _open_at(message, run.injected_at)
        )
        or (run.broker_restart and run.injected_at <= message.posted_at < run.restored_at)
        for run in runs
    )


def summarise(run: FaultRun, ledger: Ledger, runs: list[FaultRun], memory_broker: bool) -> FaultRow:
    """The row of one fault, from the messages posted during its phase."""
    row = FaultRow(run.name)
    mine = [m for m in ledger.messages if run.started_at <= m.posted_at < run.ended_at]
    row.accepted = len(mine)
    row.refused = sum(1 for t, _ in ledger.rejected if run.started_at <= t < run.ended_at)
    row.refused += sum(1 for t, _ in ledger.post_errors if run.started_at <= t < run.ended_at)
    for message in mine:
        if message.terminal == "done":
            row.completed += 1
        elif message.recovered_by is not None:
            row.completed_late += 1
        if message.terminal == "error":
            reason = message.error_reason or "?"
            row.errors[reason] = row.errors.get(reason, 0) + 1
        if not _found(message):
            if broker_lost(message, runs, memory_broker):
                row.broker_lost += 1
            else:
                row.lost += 1
                row.lost_ids.append(message.message_id)
        if message.done_count > 1 or message.mismatch:
            row.shown_twice += 1
            row.twice_ids.append(message.message_id)
        if message.never_ended and message.terminal is None:
            row.never_ended += 1
            row.never_ended_ids.append(message.message_id)
        row.resets += message.resets
        row.resumes += message.resumed_elsewhere
    windows = {
        "before": (run.started_at, run.injected_at),
        "during": (run.injected_at, run.restored_at),
        "after": (run.restored_at, run.ended_at),
    }
    for label, (start, end) in windows.items():
        ttfts = [
            m.ttft_s
            for m in mine
            if start <= m.posted_at < end and m.ttft_s is not None and m.terminal == "done"
        ]
        row.ttft[label] = (percentile(ttfts, 50), percentile(ttfts, 99))
    row.recovery_s = recovery(run, ledger, runs, memory_broker)
    if run.poison_expected is not None:
        row.dead_lettered = f"{run.poison_found}/{run.poison_expected}"
    row.log_checks = dict(run.log_checks)
    row.checks = {
        "no answer lost": row.lost == 0,
        "no answer shown twice": row.shown_twice == 0,
        "every stream ended": row.never_ended == 0,
        f"recovered within {RECOVERY_BOUND_S:.0f} s": row.recovery_s is not None
        and row.recovery_s <= RECOVERY_BOUND_S,
        "fault named in the logs": all(run.log_checks.values()) if run.log_checks else True,
    }
    row.checks.update(run.conditions)
    if run.poison_expected is not None:
        row.checks["every poison event dead-lettered"] = run.poison_found == run.poison_expected
    return row


def recovery(
    run: FaultRun, ledger: Ledger, runs: list[FaultRun], memory_broker: bool
) -> float | None:
    """Seconds until the system settled after the fault; None if it never did.

    A fault disturbs twice: when it hits, and when the component is put back (a restarted
    responder triggers a rebalance too). Each disturbance settles when every answer it
    touched is moving again - answers open at that moment have received their next token
    (or ended), answers asked in the following window whose first token was slow (over 3x
    the before-window p99 TTFT, at least 1 s) have received it - and a message asked after
    it was answered completely (asked within the disturbance's window, see `_settled`).
    Answer length is not part of it. Measured from the
    injection for kills (the rest of the system must cope at once) and from the restoration
    for outages (broker, memory), whose length is chosen by the drill. The recovery is the
    longer of the two. The first disturbance's window of asked answers ends when the
    restoration begins: an answer asked while a restarted responder is joining the group
    is slowed by the second disturbance and is judged there (from the restoration), not
    charged to the first from the injection.
    """
    before = [
        m.ttft_s
        for m in ledger.messages
        if run.started_at <= m.posted_at < run.injected_at and m.ttft_s is not None
    ]
    slow = max(1.0, 3 * (percentile(before, 99) or 0.0))
    hit_from = run.injected_at if run.recover_from == "inject" else run.restored_at
    first = _settled(
        ledger,
        runs,
        memory_broker,
        run.injected_at,
        (run.injected_at, run.restore_started_at or run.restored_at),
        hit_from,
        slow,
        fresh_until=run.restore_started_at or run.restored_at,
    )
    second = _settled(
        ledger,
        runs,
        memory_broker,
        run.restored_at,
        (run.restore_started_at or run.restored_at, run.ended_at),
        run.restored_at,
        slow,
    )
    if first is None or second is None:
        return None
    return max(first, second)


def _settled(
    ledger: Ledger,
    runs: list[FaultRun],
    memory_broker: bool,
    moment: float,
    window: tuple[float, float],
    reference: float,
    slow_s: float,
    fresh_until: float = math.inf,
) -> float | None:
    ends: list[float] = []
    for message in ledger.messages:
        if broker_lost(message, runs, memory_broker):
            continue
        if _open_at(message, moment):
            if not _found(message):
                return None
            moving = [t for t in message.token_times if t > moment]
            if moving:
                ends.append(moving[0])
            elif message.terminal is not None and message.ended_at is not None:
                ends.append(message.ended_at)
        elif window[0] <= message.posted_at < window[1]:
            if not _found(message):
                return None
            settled_at = message.first_token_at or message.ended_at
            if settled_at is None:
                continue  # answered, found afterwards (the client was told an error)
            if settled_at - message.posted_at > slow_s:
                ends.append(settled_at)
    # A fresh question answered completely. For a kill it is asked before the restart
    # begins (`fresh_until`): the first question asked after the restart is slowed by the
    # restart's rebalance and is judged there. When every user was waiting on an answer
    # the kill held up and so asked nothing before the restart, the held-up answers
    # finishing is what shows recovery.
    until = fresh_until if fresh_until > reference else math.inf
    fresh = [
        m.ended_at
        for m in ledger.messages
        if reference <= m.posted_at < until and m.terminal == "done" and m.ended_at is not None
    ]
    if not fresh and until != math.inf:
        fresh = [
            m.ended_at
            for m in ledger.messages
            if (_open_at(m, moment) or window[0] <= m.posted_at < window[1])
            and m.terminal == "done"
            and m.ended_at is not None
            and m.ended_at > moment
        ]
    if not fresh:
        return None
    ends.append(min(fresh))
    return max(0.0, max(ends) - reference)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def table(rows: list[FaultRow]) -> str:
    """The Markdown table of every fault."""
    head = (
        "| fault | accepted (202) | refused | completed | completed late | errors | lost "
        "| lost by broker (memory mode) | shown twice | never ended | resets | resumes "
        "| TTFT p50/p99 before (ms) | during | after | recovery (s) | dead-lettered | result |"
    )
    lines = [head, "|" + "---|" * 18]
    for row in rows:
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(row.errors.items())) or "0"
        ttft = [
            f"{_ms(p50)} / {_ms(p99)}"
            for p50, p99 in (row.ttft[w] for w in ("before", "during", "after"))
        ]
        failed = [name for name, ok in row.checks.items() if not ok]
        result = "pass" if not failed else "FAIL: " + "; ".join(failed)
        lines.append(
            f"| {row.name} | {row.accepted} | {row.refused} | {row.completed} | "
            f"{row.completed_late} | {errors} | {row.lost} | {row.broker_lost} | "
            f"{row.shown_twice} | {row.never_ended} | {row.resets} | {row.resumes} | "
            f"{ttft[0]} | {ttft[1]} | {ttft[2]} | "
            f"{'-' if row.recovery_s is None else f'{row.recovery_s:.1f}'} | "
            f"{row.dead_lettered} | {result} |"
        )
    return "\n".join(lines)


def details(rows: list[FaultRow]) -> str:
    """Log checks and the ids of any message that broke a condition (for `jq` follow-up)."""
    out = []
    for row in rows:
        checks = ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in row.log_checks.items())
        out.append(f"- {row.name}: log lines: {checks or '-'}")
        for label, ids in (
            ("lost", row.lost_ids),
            ("shown twice", row.twice_ids),
            ("never ended", row.never_ended_ids),
        ):
            if ids:
                out.append(f"  - {label}: {', '.join(ids[:10])}")
    return "\n".join(out)


def rss_table(
    start: dict[str, int | None], end: dict[str, int | None], starts: dict[str, int]
) -> str:
    """Resident memory of each process at the start and the end of a soak.

    A process the faults restarted is a new process at the end (`starts` > 1): its growth
    is not a leak measurement; only processes started once are.
    """
    lines = [
        "| process | starts | RSS start (MiB) | RSS end (MiB) | growth |",
        "|---|---|---|---|---|",
    ]
    for name in start:
        a, b = start.get(name), end.get(name)
        growth = f"{(b - a) / 1024:+.1f} MiB" if a is not None and b is not None else "-"
        lines.append(
            f"| {name} | {starts.get(name, 1)} | {'-' if a is None else f'{a / 1024:.1f}'} | "
            f"{'-' if b is None else f'{b / 1024:.1f}'} | {growth} |"
        )
    return "\n".join(lines)


def tally(rows: list[FaultRow]) -> tuple[int, int]:
    """(passed, failed) over every pass condition of every fault."""
    passed = sum(1 for row in rows for ok in row.checks.values() if ok)
    failed = sum(1 for row in rows for ok in row.checks.values() if not ok)
    return passed, failed


def as_json(rows: list[FaultRow]) -> list[dict[str, Any]]:
    return [row.__dict__ for row in rows]
