"""Processes that tests start as a user at a terminal would."""

from __future__ import annotations

import signal


def as_at_a_terminal() -> None:
    """``preexec_fn`` for a process that a test stops with Ctrl-C's signal: SIGINT at its default, as in a terminal.

    A runner may start the suite in the background with SIGINT ignored; children inherit that, and Python then never
    raises KeyboardInterrupt, so the command under test would run to its end instead of stopping."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
