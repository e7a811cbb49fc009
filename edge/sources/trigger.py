"""PLC-triggered capture: a source with `plc_trigger: true` reads a frame only when asked.

The PLC (through the OPC UA method `TriggerInspection`) calls `TriggerGate.request()`;
the camera's reader thread, waiting in `TriggerGate.wait()`, then reads the next frame
(a GenICam camera with `trigger: software` fires TriggerSoftware for it; a video or
synthetic source delivers its next frame) and answers the request with the frame's id
and capture time, from which the caller derives the inspection id before the verdict
exists. At most `max_pending` requests wait; more are refused (the PLC asks too fast).

Thread safety: `request` from any thread; `wait` and the ticket's `done`/`fail` from the
reader thread.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from eiad.errors import SourceError


class TriggerError(SourceError):
    """A trigger request that cannot be served: refused, timed out or the source gone."""


class NotTriggerable(TriggerError):
    """No such camera, or one that is not PLC-triggered."""


@dataclass
class Ticket:
    """One PLC request; `frame_id` and `captured_unix_s` are set when its frame was read."""

    frame_id: int | None = None
    captured_unix_s: float | None = None
    error: str = ""
    answered: threading.Event = field(default_factory=threading.Event)

    def done(self, frame_id: int, captured_unix_s: float) -> None:
        self.frame_id, self.captured_unix_s = frame_id, captured_unix_s
        self.answered.set()

    def fail(self, reason: str) -> None:
        self.error = reason
        self.answered.set()


class TriggerGate:
    def __init__(self, source_id: str, max_pending: int = 16) -> None:
        self.source_id = source_id
        self._max = max_pending
        self._pending: deque[Ticket] = deque()
        self._ready = threading.Condition()

    def request(self, timeout_s: float) -> Ticket:
        """Ask for one frame and wait up to `timeout_s` for it to be read; the answered ticket."""
        ticket = Ticket()
        with self._ready:
            if len(self._pending) >= self._max:
                raise TriggerError(f"source {self.source_id}: {self._max} triggers already waiting; trigger slower")
            self._pending.append(ticket)
            self._ready.notify()
        if not ticket.answered.wait(timeout_s):
            with self._ready:
                if ticket in self._pending:  # never started: withdraw it
                    self._pending.remove(ticket)
            raise TriggerError(f"source {self.source_id}: no frame within {timeout_s:g} s of the trigger")
        if ticket.error:
            raise TriggerError(f"source {self.source_id}: {ticket.error}")
        return ticket

    def wait(self, stop: threading.Event, poll_s: float = 0.2) -> Ticket | None:
        """The next request (reader thread), or None once `stop` is set."""
        with self._ready:
            while not self._pending:
                if stop.is_set():
                    return None
                self._ready.wait(poll_s)
            return self._pending.popleft()

    def fail_all(self, reason: str) -> None:
        """Answer every waiting request with an error (the source ended or the station stops)."""
        with self._ready:
            pending, self._pending = list(self._pending), deque()
        for ticket in pending:
            ticket.fail(reason)
