"""The repair rule of the exact counters (capacity.py, and memory.py's stand-ins): a count
above what is really held is only lowered by what two looks at least REPAIR_AFTER seconds
apart both showed too high, so a reading that lags (SQS's approximate figures, a job
between its reservation and its write) never gives a place away. Pure: no AWS imports."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable

REPAIR_AFTER = 60.0


class TwoLooks:
    """Per key (a tenant, or one counter): the first look that finds a surplus is noted;
    a later look, REPAIR_AFTER or more after it, gives back what both showed."""

    def __init__(self, clock: Callable[[], float], after: float = REPAIR_AFTER):
        self._clock, self._after = clock, after
        self._lock = threading.Lock()
        self._suspect: dict[Hashable, tuple[float, int]] = {}

    def due(self, key: Hashable) -> bool:
        """A surplus was noted long enough ago that the next look may give it back."""
        with self._lock:
            seen = self._suspect.get(key)
        return seen is not None and self._clock() - seen[0] >= self._after

    def leaked(self, key: Hashable, surplus: int) -> int:
        """This look's `surplus` (count minus what is held): how many to give back now."""
        now = self._clock()
        with self._lock:
            seen = self._suspect.get(key)
            if surplus <= 0:
                self._suspect.pop(key, None)
                return 0
            if seen is None or now - seen[0] < self._after:
                if seen is None:
                    self._suspect[key] = (now, surplus)
                return 0
            del self._suspect[key]
            return min(surplus, seen[1])
