"""User-facing errors. Every message is one line that says what went wrong and what to do; no traceback is shown."""

from __future__ import annotations


def one_line(error: BaseException | str, limit: int | None = None) -> str:
    """An error (or any text) as one line: whitespace folded, cut to ``limit`` characters with "..." when given.

    Readers' and servers' messages may span several lines or quote a whole page; an exception without words is
    named by its type.
    """
    words = " ".join(str(error).split()) or (type(error).__name__ if isinstance(error, BaseException) else "")
    return words if limit is None or len(words) <= limit else words[: limit - 3] + "..."


class CbamVizError(Exception):
    """Base of every error the CLI and the app turn into a one-line message."""


class WeightsError(CbamVizError):
    """A checkpoint is missing, broken, of another architecture, or fails its hash."""


class ImageError(CbamVizError):
    """An input image cannot be used: unknown format, truncated, too large, empty."""
