"""The session's event loop ends even when a test leaves a task that misses a cancellation.

aiokafka swallows a CancelledError that lands in some of its awaits; a client a test leaves
open then ignored the loop's one cancellation at the end of the session, and the suite hung
after its last test (tests/conftest.py `_leftover_tasks_end`). This test leaves such a task
behind on purpose: without that fixture the whole run never ends.
"""

from __future__ import annotations

import asyncio


async def test_a_task_that_misses_one_cancellation_is_left_behind() -> None:
    async def misses_one_cancellation() -> None:
        missed = False
        while True:
            try:
                await asyncio.sleep(1.0)
            except asyncio.CancelledError:
                if missed:
                    raise
                missed = True

    asyncio.get_running_loop().create_task(misses_one_cancellation(), name="misses-one-cancel")
    await asyncio.sleep(0)
