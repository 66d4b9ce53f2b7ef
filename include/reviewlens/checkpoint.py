"""Writes finished outcomes to the warehouse while a chunk is still running.

Cadence (group commit): an outcome is written as soon as the previous write has finished, but at most
one write per ``min_interval_s`` (0.1 s by default) unless ``every_n`` outcomes are already waiting,
and never later than ``every_s`` after it arrived. At low throughput every outcome is durable within
a few milliseconds; at high throughput the batches grow by themselves, so the warehouse sees at most
about ten small transactions per second per chunk. A chunk killed mid-flight therefore loses only the
outcomes of the last ~0.1 s plus one write; the retry reads what was written and requests only the
rest (see docs/reliability.md for the measured figures).

Outcomes for ids the chunk was not given (a reply that invents ids) and second outcomes for the same
id are dropped and counted, never written. A write that fails keeps its batch buffered: ``close``
tries it once more, and the error fails the chunk instead of losing the outcomes silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from reviewlens.models import ReviewOutcome

log = logging.getLogger(__name__)

DEFAULT_MIN_INTERVAL_S = 0.1


class Checkpointer:
    """Buffers outcomes and writes them in small batches as they arrive (see the module docstring)."""

    def __init__(
        self,
        write: Callable[[list[ReviewOutcome]], None],
        *,
        expected_ids: set[str],
        every_n: int = 100,
        every_s: float = 5.0,
        min_interval_s: float = DEFAULT_MIN_INTERVAL_S,
    ) -> None:
        self._write = write
        self._expected = expected_ids
        self._seen: set[str] = set()
        self._buffer: list[ReviewOutcome] = []
        self._every_n = max(1, every_n)
        # The floor between two writes can never exceed the promised maximum age.
        self._min_interval = max(0.0, min(min_interval_s, every_s))
        self._wake = asyncio.Event()
        self._full = asyncio.Event()
        self._closing = False
        self._last_write = float("-inf")
        self.analyzed = 0
        self.failed = 0
        self.unexpected = 0
        self.duplicates = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.flushes = 0
        self.written = 0

    def add(self, outcome: ReviewOutcome) -> None:
        """Accept one final outcome (called from the event loop as each review finishes)."""
        if outcome.review_id not in self._expected:
            self.unexpected += 1
            log.warning(
                "Dropped an outcome for review id %r that this chunk was not given", outcome.review_id
            )
            return
        if outcome.review_id in self._seen:
            self.duplicates += 1
            return
        self._seen.add(outcome.review_id)
        self._buffer.append(outcome)
        if outcome.ok:
            self.analyzed += 1
        else:
            self.failed += 1
        self.prompt_tokens += outcome.prompt_tokens
        self.completion_tokens += outcome.completion_tokens
        self._wake.set()
        if len(self._buffer) >= self._every_n:
            self._full.set()

    @property
    def pending(self) -> int:
        """Outcomes accepted but not yet written."""
        return len(self._buffer)

    async def _flush(self) -> None:
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        self._full.clear()
        started = self._last_write = time.monotonic()
        try:
            await asyncio.to_thread(self._write, batch)
        except BaseException:
            self._buffer[:0] = batch  # keep them: close() retries, and nothing is dropped silently
            raise
        self.flushes += 1
        self.written += len(batch)
        log.debug("Checkpointed %d outcome(s) in %.3fs", len(batch), time.monotonic() - started)

    async def run(self) -> None:
        """Write as outcomes arrive until ``close``; a failed write ends this task with its error."""
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            floor = self._min_interval - (time.monotonic() - self._last_write)
            if floor > 0 and not self._closing and len(self._buffer) < self._every_n:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), floor)
            await self._flush()

    async def close(self, runner: asyncio.Task) -> None:
        """Stop the writer task and write what is left."""
        self._closing = True
        self._wake.set()
        try:
            await runner
        finally:
            await self._flush()
