"""Ctrl-C and SIGTERM ask the run to stop after the current step, so it can save where it was.

A second Ctrl-C stops at once (KeyboardInterrupt), for when saving itself hangs.
"""
from __future__ import annotations

import signal
import threading
from types import FrameType


class StopRequest:
    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    @property
    def exit_code(self) -> int:
        """What a shell expects of a process stopped by this signal: 128 + its number."""
        return 128 + int(getattr(signal, self.signal_name or "SIGINT"))
