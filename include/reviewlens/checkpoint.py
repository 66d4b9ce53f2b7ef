"""Writes finished outcomes to the warehouse while a chunk is still running.

A chunk killed mid-flight loses at most the outcomes of the last few seconds; the retry reads
what was written and requests only the rest. Outcomes for ids the chunk was not given (a reply
that invents ids) and second outcomes for the same id are dropped and counted, never written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from reviewlens.models import ReviewOutcome

log = logging.getLogger(__name__)


class Checkpointer:
    """Buffers outcomes and flushes them every ``every_n`` outcomes or ``every_s`` seconds."""

    def __init__(
        self,
        write: Callable[[list[ReviewOutcome]], None],
        *,
        expected_ids: set[str],
        every_n: int = 100,
        every_s: float = 5.0,
    ) -> None:
        self._write = write
        self._expected = expected_ids
        self._seen: set[str] = set()
        self._buffer: list[ReviewOutcome] = []
        self._every_n = max(1, every_n)
        self._every_s = every_s
        self._wake = asyncio.Event()
        self._closing = False
        self.analyzed = 0
        self.failed = 0
        self.unexpected = 0
        self.duplicates = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.flushes = 0

    def add(self, outcome: ReviewOutcome) -> None:
        """Accept one final outcome (called from the event loop as each review finishes)."""
        if outcome.review_id not in self._expected:
            self.unexpected += 1
            log.warning("Dropped an outcome for review id %r that this chunk was not given", outcome.review_id)
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
        if len(self._buffer) >= self._every_n:
            self._wake.set()

    async def _flush(self) -> None:
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        started = time.monotonic()
        await asyncio.to_thread(self._write, batch)
        self.flushes += 1
        log.debug("Checkpointed %d outcome(s) in %.3fs", len(batch), time.monotonic() - started)

    async def run(self) -> None:
        """Flush periodically until ``close``; a failed write fails the chunk (nothing is lost)."""
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._every_s)
            except TimeoutError:
                pass
            self._wake.clear()
            await self._flush()

    async def close(self, runner: asyncio.Task) -> None:
        """Stop the periodic flusher and write what is left."""
        self._closing = True
        self._wake.set()
        try:
            await runner
        finally:
            await self._flush()

    @property
    def missing(self) -> set[str]:
        return self._expected - self._seen
