"""Rate limits per API key: a token bucket each, in this process's memory.

The gateway is one process, so one bucket per key in memory is the whole truth; with several
gateway processes each would allow the full rate (a shared store such as Redis would be needed).
A bucket holds BURST requests and refills at RATE_PER_SECOND; a batch counts as one request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

RATE_PER_SECOND = 20.0
BURST = 100


@dataclass
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    def __init__(
        self,
        rate_per_second: float = RATE_PER_SECOND,
        burst: int = BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate, self.burst, self.clock = rate_per_second, burst, clock
        self._buckets: dict[int, _Bucket] = {}

    def take(self, key_id: int) -> float:
        """Spend one request of `key_id`'s bucket: 0 when allowed, else the seconds until it would be."""
        now = self.clock()
        bucket = self._buckets.setdefault(key_id, _Bucket(float(self.burst), now))
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate
