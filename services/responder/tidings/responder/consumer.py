"""The `user_messages` consumer loop: fetch, hand records to partition workers, commit.

`getmany` keeps being called while answers run in background tasks, so a long generation
never pushes the consumer past `max.poll.interval.ms`. A partition whose backlog reaches
`max_backlog` is paused and resumed once half of it has drained. Offsets are committed
only up to the lowest unfinished message of each partition (see `OffsetTracker`), as soon
as an answer finishes (a committer task; commits never run concurrently, so the committed
position only moves forward): the smaller the gap between `answered` and its commit, the
fewer answers a replica killed at that moment leaves to be answered twice.

Cancel requests are acted on the moment they are fetched, not in queue order: the message
they name may be answering right now, or waiting behind its session's earlier messages.

A rebalance does not wait for answers in flight. aiokafka rebalances eagerly: every member
gives up all its partitions and rejoins, and the group waits for every member. A member that
first finished its answers (up to seconds each) held the whole group - and the takeover of a
dead member's partitions - for that long. Now a revoked partition's worker is parked with its
answers running: what finished is committed, the member rejoins at once, and a partition
assigned back to it (as all of them are to the survivor of a kill) goes on where it was
(the consumer seeks past the records the worker holds). A partition that went to another
member has its answers cut off at the new assignment, uncommitted, so the new owner answers
them again (the client sees a reset, as after a kill).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from pydantic import ValidationError

from tidings.common.events import MESSAGE_CANCEL, CancelRequest, parse_inbound_event
from tidings.common.kafka import is_transient, stop_task
from tidings.common.logging import get_logger
from tidings.common.pacing import FetchPacer
from tidings.responder import metrics
from tidings.responder.cancels import CancelRegistry
from tidings.responder.partition import Handler, PartitionWorker, Record

log = get_logger(__name__)

# A background task cancelled at shutdown that has not ended by then is abandoned (logged).
STOP_TIMEOUT_S = 10.0


def flow_changes(
    backlogs: Mapping[TopicPartition, int], paused: AbstractSet[TopicPartition], max_backlog: int
) -> tuple[list[TopicPartition], list[TopicPartition]]:
    """Partitions to pause (backlog reached `max_backlog`) and to resume (drained to half).

    The gap between the two thresholds keeps a partition from flapping on every poll.
    """
    pause = [tp for tp, n in backlogs.items() if n >= max_backlog and tp not in paused]
    resume = [tp for tp, n in backlogs.items() if n <= max_backlog // 2 and tp in paused]
    return sorted(pause), sorted(resume)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: ResponderConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._owner.revoke(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._owner.assign(assigned)


class ResponderConsumer:
    """Owns the partition workers of one subscribed consumer."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        topic: str,
        handler: Handler,
        *,
        max_in_flight: int | None,
        max_backlog: int,
        revoke_grace_s: float,
        on_crash: Callable[[BaseException], None],
        cancels: CancelRegistry | None = None,
        poll_timeout_ms: int = 200,
        pacer: FetchPacer | None = None,
    ) -> None:
        self._cancels = cancels or CancelRegistry()
        # Short fetch waits while messages arrive and answers finish, the idle wait after.
        self._pacer = pacer
        self._consumer = consumer
        self._topic = topic
        self._handler = handler
        self._max_in_flight = max_in_flight
        self._max_backlog = max_backlog
        self._revoke_grace_s = revoke_grace_s
        self._on_crash = on_crash
        self._poll_timeout_ms = poll_timeout_ms
        self._workers: dict[TopicPartition, PartitionWorker] = {}
        # Workers of revoked partitions, answering on until the new assignment says whose.
        self._parked: dict[TopicPartition, PartitionWorker] = {}
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        # Set when a partition has a finished prefix to commit (see `_commit_finished`).
        self._commit_wanted = asyncio.Event()
        self._commit_lock = asyncio.Lock()
        self._committer: asyncio.Task[None] | None = None
        # When (ms, aiokafka's last_poll_timestamp) the fetch that brought each partition's
        # latest records was answered (see `_log_started_over`).
        self._fetched_at: dict[TopicPartition, int] = {}
        # Workers of a partition whose log started over, finishing their answers in flight.
        self._retired: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> bool:
        """True while the fetch loop runs."""
        return self._task is not None and not self._task.done() and not self._stopping

    @property
    def assigned(self) -> list[TopicPartition]:
        return sorted(self._workers)

    def start(self) -> None:
        """Subscribe and start fetching in a background task."""
        self._consumer.subscribe([self._topic], listener=_Listener(self))
        if self._pacer is not None:
            self._pacer.attach(self._consumer)
        self._task = asyncio.create_task(self._run(), name="responder-fetch")
        self._task.add_done_callback(self._fetch_loop_ended)
        self._committer = asyncio.create_task(self._commit_finished(), name="responder-commit")
        self._committer.add_done_callback(self._committer_ended)

    def _fetch_loop_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("fetch loop crashed", error=repr(error))
            self._on_crash(error)

    def _committer_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("commit loop crashed", error=repr(error))
            self._on_crash(error)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                batches = await self._consumer.getmany(
                    timeout_ms=self._poll_timeout_ms, max_records=self._max_backlog
                )
            except KafkaError as exc:
                if not is_transient(exc):
                    raise
                log.warning("fetch failed; retrying", error=repr(exc))
                await asyncio.sleep(1.0)
                continue
            if self._pacer is not None:
                if batches:
                    self._pacer.touch()
                else:
                    self._pacer.tick()
            self._take(batches)
            self._flow_control()
            await self._measure_lag()
            # Committed by the committer task, not here: a commit's round trip to the
            # broker held the next fetch (records waiting in aiokafka's buffer; the echo
            # benchmark's p99 from the gateway to the responder 25 -> 11 ms).
            if any(w.tracker.to_commit() is not None for w in self._workers.values()):
                self._commit_wanted.set()

    def _take(self, batches: Mapping[TopicPartition, list[Record]]) -> None:
        """Hand fetched records to their partitions' workers."""
        for tp, records in batches.items():
            # When the fetch that brought them was answered: its highwater may lie below them.
            self._fetched_at[tp] = self._consumer.last_poll_timestamp(tp)
            worker = self._workers.get(tp)
            # Records of a partition revoked meanwhile belong to its next owner.
            if worker is not None and not self._stopping:
                self._add(worker, records)

    def _answer_finished(self) -> None:
        if self._pacer is not None:
            # A conversation's next message tends to follow its answer.
            self._pacer.touch()
        self._commit_wanted.set()

    async def _commit_finished(self) -> None:
        """Commit as soon as answers finish (many finishing together make one commit), and
        what the fetch loop found finished (cancel requests, a commit that failed)."""
        while not self._stopping:
            await self._commit_wanted.wait()
            self._commit_wanted.clear()
            await self.commit(list(self._workers.values()))

    def _add(self, worker: PartitionWorker, records: list[Record]) -> None:
        """Queue messages; act on cancel requests now, so they need not wait their turn."""
        batch: list[Record] = []
        for record in records:
            cancel = _as_cancel(record)
            if cancel is None:
                batch.append(record)
                continue
            if batch:
                worker.add(batch)
                batch = []
            worker.add_finished(record)
            if self._cancels.cancel(cancel.message_id, (cancel.session_id, cancel.user)):
                log.info("cancel request: stopping the answer", message_id=cancel.message_id)
            elif worker.expedite(functools.partial(_names, cancel=cancel)):
                log.info(
                    "cancel request: message cancelled before its answer",
                    message_id=cancel.message_id,
                )
            else:
                log.info(
                    "cancel request for a message not being answered here; remembered",
                    message_id=cancel.message_id,
                )
        if batch:
            worker.add(batch)

    async def _measure_lag(self) -> None:
        for tp in list(self._workers):
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                # Known after a fetch (a highwater implies one); bounded all the same, so
                # a partition waiting for an offset reset never stalls the fetch loop.
                # (`asyncio.timeout`: a known position returns at once, without a task.)
                async with asyncio.timeout(0.1):
                    position = await self._consumer.position(tp)
            except (IllegalStateError, KafkaError, TimeoutError):
                continue
            if tp not in self._workers:
                # Revoked while its position was asked (a rebalance after a broker restart):
                # no longer ours to read from the start (a KeyError here crashed the loop).
                continue
            if position > highwater:
                if self._consumer.last_poll_timestamp(tp) > self._fetched_at.get(tp, -1):
                    await self._log_started_over(tp, position, highwater)
                continue
            metrics.CONSUMER_LAG.labels(partition=str(tp.partition)).set(
                max(0, highwater - position)
            )

    async def _log_started_over(self, tp: TopicPartition, position: int, highwater: int) -> None:
        """The partition's log ends below our position: the broker lost its log.

        A broker without durable storage (Tansu in memory mode) that restarted numbers its
        records from 0 again, and our position (or the offset we committed to it just after
        it came back) lies beyond its new end. Kafka would answer such a fetch with
        OFFSET_OUT_OF_RANGE and the consumer would reset; Tansu answers with nothing, so
        every new message below the old position would be skipped. The fetch highwater is
        exact (unlike ListOffsets on Tansu) and fresh after every (re)assignment, so
        position > highwater happens only then - provided the highwater comes from a fetch
        answered after the one that brought the records we are past: under load, Apache
        Kafka's fetch response can carry records past the highwater it reports (a record
        appended while the fetch was read; seen in the echo benchmark: position 321,
        highwater 320 on a log on disk, and the partition was read again from 0, its
        answers given twice). The caller checks that. Read the new log from its start with a new
        worker: the old worker's offsets belong to the lost log and are never committed;
        its answers in flight may still finish.
        """
        log.warning(
            "partition log started over below our position (the broker lost its log); "
            "reading it from its start",
            partition=tp.partition,
            position=position,
            log_end=highwater,
        )
        old = self._workers.pop(tp, None)
        if old is None:
            return
        self._workers[tp] = self._new_worker(tp)
        await self._consumer.seek_to_beginning(tp)
        self._retire(old, grace_s=self._revoke_grace_s)

    def _retire(self, worker: PartitionWorker, *, grace_s: float) -> None:
        """Stop a worker no longer fed (never committed again) in the background."""
        stopping = asyncio.create_task(
            worker.stop(grace_s), name=f"responder-retire-{worker.tp.partition}"
        )
        self._retired.add(stopping)
        stopping.add_done_callback(self._retired.discard)

    def _flow_control(self) -> None:
        backlogs = {tp: worker.backlog for tp, worker in self._workers.items()}
        pause, resume = flow_changes(backlogs, self._consumer.paused(), self._max_backlog)
        with contextlib.suppress(IllegalStateError):
            for tp in pause:
                self._consumer.pause(tp)
                log.info("partition paused", partition=tp.partition, backlog=backlogs[tp])
            for tp in resume:
                self._consumer.resume(tp)
                log.info("partition resumed", partition=tp.partition, backlog=backlogs[tp])
        metrics.BACKLOG.set(sum(backlogs.values()))

    async def commit(self, workers: Iterable[PartitionWorker]) -> None:
        """Commit each worker's finished prefix; a failed commit is retried next time."""
        async with self._commit_lock:
            await self._commit(workers)

    async def _commit(self, workers: Iterable[PartitionWorker]) -> None:
        assignment = self._consumer.assignment()
        offsets = {
            worker.tp: position
            for worker in workers
            if worker.tp in assignment and (position := worker.tracker.to_commit()) is not None
        }
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group moved on; the partitions' next owner answers from the last commit.
            log.warning("commit rejected after a rebalance", error=repr(exc))
            return
        except KafkaError as exc:
            log.warning("commit failed; will retry", error=repr(exc))
            return
        for worker in workers:
            if worker.tp in offsets:
                worker.tracker.committed(offsets[worker.tp])
        log.debug("committed", offsets={tp.partition: pos for tp, pos in offsets.items()})

    def assign(self, assigned: Iterable[TopicPartition]) -> None:
        """Take parked workers back (fetching on after their records), start new ones, and
        cut off the answers of parked partitions that went to another member."""
        assigned = set(assigned)
        for tp in sorted(assigned):
            parked = self._parked.pop(tp, None)
            if parked is not None and not parked.closed:
                self._workers[tp] = parked
                if parked.next_offset is not None:
                    # The committed position is at or before what the worker holds.
                    self._consumer.seek(tp, parked.next_offset)
            elif tp not in self._workers:
                self._workers[tp] = self._new_worker(tp)
        lost = list(self._parked.values())
        self._parked.clear()
        for worker in lost:
            self._retire(worker, grace_s=0.0)
            with contextlib.suppress(KeyError):
                metrics.CONSUMER_LAG.remove(str(worker.tp.partition))
        if lost:
            log.info(
                "partitions moved to another member; their answers in flight are cut off",
                partitions=sorted(w.tp.partition for w in lost),
            )
        log.info("partitions assigned", partitions=sorted(tp.partition for tp in assigned))

    def _new_worker(self, tp: TopicPartition) -> PartitionWorker:
        return PartitionWorker(
            tp,
            self._handler,
            max_in_flight=self._max_in_flight,
            on_crash=self._on_crash,
            on_finish=self._answer_finished,
        )

    async def revoke(self, revoked: Iterable[TopicPartition]) -> None:
        """Commit what finished and park the workers, answers still running (see above)."""
        workers = [self._workers.pop(tp) for tp in list(revoked) if tp in self._workers]
        if not workers:
            return
        await self.commit(workers)
        for worker in workers:
            self._parked[worker.tp] = worker
        log.info("partitions revoked", partitions=sorted(w.tp.partition for w in workers))

    async def shutdown(self, grace_s: float) -> None:
        """Stop fetching, let running answers finish within `grace_s`, commit what finished."""
        self._stopping = True
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=self._poll_timeout_ms / 1000 + 2)
            # Bounded: a task that misses its cancellation is cancelled again, then abandoned.
            await stop_task(self._task, name="responder-fetch", timeout_s=STOP_TIMEOUT_S)
        workers = [*self._workers.values(), *self._parked.values()]
        await asyncio.gather(*(worker.stop(grace_s) for worker in workers))
        # Workers of a log that started over may still be finishing (never committed).
        await asyncio.gather(*self._retired, return_exceptions=True)
        if self._committer is not None:
            await stop_task(self._committer, name="responder-committer", timeout_s=STOP_TIMEOUT_S)
        await self.commit(workers)


def _as_cancel(record: Record) -> CancelRequest | None:
    """The cancel request in `record`, if it is one (cheap check before parsing)."""
    value = record.value or b""
    if MESSAGE_CANCEL.encode() not in value:
        return None
    try:
        event = parse_inbound_event(value)
    except ValidationError:
        return None  # the handler dead-letters it
    return event if isinstance(event, CancelRequest) else None


def _names(record: Record, cancel: CancelRequest) -> bool:
    """True when `record` is the user message `cancel` names, in its session and user."""
    value = record.value or b""
    if cancel.message_id.encode() not in value:
        return False
    try:
        event = parse_inbound_event(value)
    except ValidationError:
        return False
    return (
        not isinstance(event, CancelRequest)
        and event.message_id == cancel.message_id
        and (event.session_id, event.user) == (cancel.session_id, cancel.user)
    )
