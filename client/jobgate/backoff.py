"""The worker's waiting rules, as pure functions (the tests read the schedule from here).

An idle long poll bills the API Lambda for its whole wait (20 s × 1 GB per empty claim), so
a worker that long-polled forever would cost about $44 a month doing nothing. Right after
a job (or at start) the worker long-polls, so a job submitted meanwhile is handed over
within about a second; once `warm_polls` long polls in a row came back empty, it switches
to short polls (`waitSeconds: 0`, a few milliseconds billed) spaced by a doubling pause up
to `idle_max_seconds`. A job submitted to an idle worker then waits at most that pause.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

LONG_POLL_SECONDS = 20  # the contract's maximum waitSeconds


@dataclass(frozen=True)
class IdleSchedule:
    """What the claim loop does after `empty` claims in a row came back 204."""

    warm_polls: int = 3            # long polls (3 × 20 s: one idle minute) before going idle
    long_poll_seconds: int = LONG_POLL_SECONDS
    first_pause: float = 5.0       # pause before the first short poll
    idle_max_seconds: float = 60.0

    def wait_seconds(self, empty: int) -> int:
        """The claim's `waitSeconds`: a long poll while warm, a short poll when idle."""
        return self.long_poll_seconds if empty < self.warm_polls else 0

    def pause(self, empty: int) -> float:
        """Seconds to sleep before the next claim (0 while warm)."""
        idle = empty - self.warm_polls  # short polls already made after going idle
        if idle < 0:
            return 0.0
        return min(self.idle_max_seconds, self.first_pause * 2.0 ** idle)


def retry_delay(failures: int, base: float = 0.5, cap: float = 30.0, jitter: float = 0.1) -> float:
    """Seconds before retrying a request that failed `failures` times (1, 2, ...): doubling,
    capped, with ± `jitter` so that workers cut off together do not come back together."""
    delay = min(cap, base * 2.0 ** max(0, failures - 1))
    return delay * (1.0 + random.uniform(-jitter, jitter)) if jitter else delay


def attempt_retry_seconds(attempt: int, base: float = 2.0) -> float:
    """The server's default retry delay for a failed attempt (`JOB_RETRY_BASE_SECONDS` ×
    2^(attempt-1)), sent as `retryAfterSeconds` when a handler raised something other than
    `Retry`."""
    return base * 2.0 ** max(0, attempt - 1)
