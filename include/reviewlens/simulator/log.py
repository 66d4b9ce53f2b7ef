"""The in-memory request log and running counters that tests and benchmarks read back.

Entries hold ids, statuses and counts only: never review text, never the API key or headers.
The log is bounded (oldest entries drop first); counters cover every request since the last reset.
"""

from __future__ import annotations

import itertools
import resource
import time
from collections import Counter, deque
from typing import Any


class LogEntry:
    """One chat-completions request as the simulator saw it."""

    __slots__ = (
        "completion_tokens",
        "fault",
        "index",
        "latency_ms",
        "model",
        "prompt_tokens",
        "request_id",
        "review_ids",
        "status",
        "stream",
        "t_end",
        "t_start",
    )

    def __init__(self, request_id: str, t_start: float) -> None:
        self.index = -1
        self.request_id = request_id
        self.review_ids: list[str] = []
        self.status = 0
        self.fault: str | None = None
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.stream = False
        self.t_start = t_start
        self.t_end = t_start
        self.model: str | None = None
        self.latency_ms = 0.0  # the drawn delay before answering (latency + hang + token pacing)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


class RequestLog:
    """Bounded request log plus counters; ``index`` numbers entries from 0 since the last reset."""

    def __init__(self, limit: int) -> None:
        self._entries: deque[LogEntry] = deque(maxlen=max(1, limit))
        self.reset()

    def reset(self) -> None:
        self._entries.clear()
        self.next_index = 0
        self.by_status: Counter[int] = Counter()
        self.by_fault: Counter[str] = Counter()
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.inflight = 0
        self.max_inflight = 0
        self._cpu0 = time.process_time()
        self._t0 = time.monotonic()

    def resize(self, limit: int) -> None:
        self._entries = deque(self._entries, maxlen=max(1, limit))

    def started(self) -> None:
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)

    def finished(self, entry: LogEntry) -> None:
        self.inflight -= 1
        entry.index = self.next_index
        self.next_index += 1
        self._entries.append(entry)
        self.by_status[entry.status] += 1
        if entry.fault:
            self.by_fault[entry.fault] += 1
        if entry.status == 200:
            self.prompt_tokens += entry.prompt_tokens
            self.completion_tokens += entry.completion_tokens

    def entries(self, since: int = 0) -> list[dict[str, Any]]:
        """Entries with ``index >= since`` that are still held."""
        first = self.next_index - len(self._entries)
        skip = max(0, since - first)
        return [e.to_dict() for e in itertools.islice(self._entries, skip, None)]

    def stats(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "requests": self.next_index,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "by_fault": dict(sorted(self.by_fault.items())),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "inflight": self.inflight,
            "max_inflight": self.max_inflight,
            # CPU of the whole server process (in-thread: includes the test process itself).
            "cpu_s": round(time.process_time() - self._cpu0, 6),
            "uptime_s": round(time.monotonic() - self._t0, 6),
            "max_rss_kb": usage.ru_maxrss,
            "log_held": len(self._entries),
        }
