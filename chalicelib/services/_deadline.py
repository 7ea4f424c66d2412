"""Run a handler with a deadline it cannot overrun.

Python cannot stop a thread from outside, so the handler runs in a thread of its own and
the caller stops *waiting* for it at the deadline: the attempt ends `timed_out` on time and
the rest of the batch goes on. The context refuses the handler's calls from then on
(`canceled` is True, `progress`/`log`/`set_variable` raise TimedOut), so a cooperative
handler stops at its next call. One that never calls its context (a blocking read, a tight
loop) is abandoned: its thread keeps running in the process (in Lambda, in the frozen and
thawed container) until it returns; nothing it does afterwards is recorded."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Outcome:
    value: Any = None
    error: BaseException | None = None
    timed_out: bool = False


def call_with_deadline(fn: Callable[[], Any], deadline: float,
                       on_timeout: Callable[[], None] = lambda: None,
                       name: str = "handler",
                       clock: Callable[[], float] = time.monotonic) -> Outcome:
    """`fn()` in a daemon thread; its value or exception, or `timed_out` once the monotonic
    `deadline` (read on `clock`) passes (then `on_timeout` runs first, while the thread may
    still be going).
    The thread keeps the caller's context variables (telemetry fields)."""
    outcome = Outcome()
    ctx = contextvars.copy_context()

    def target() -> None:
        try:
            outcome.value = ctx.run(fn)
        except BaseException as exc:  # noqa: BLE001  (handed to the caller, even a kill)
            outcome.error = exc

    thread = threading.Thread(target=target, name=f"{name}-attempt", daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - clock()))
    if thread.is_alive():
        on_timeout()
        return Outcome(timed_out=True)
    return outcome
