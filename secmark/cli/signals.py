"""How a foreground server command stops: Ctrl-C, SIGTERM or SIGHUP."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["StopRequested", "stop_on_signals"]


class StopRequested(Exception):
    """A signal asked the command to stop."""


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`StopRequested` inside the block (Ctrl-C
    raises KeyboardInterrupt already, unless the shell that started the
    command ignores it, as it does for a background job); the previous
    handlers come back after."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise StopRequested(signal.Signals(signum).name)

    previous: dict[signal.Signals, Callable[[int, FrameType | None], Any] | int | None] = {}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        previous[signum] = signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
