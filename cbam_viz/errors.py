"""User-facing errors. Every message is one line that says what went wrong and what to do; no traceback is shown."""

from __future__ import annotations


class CbamVizError(Exception):
    """Base of every error the CLI and the app turn into a one-line message."""


class WeightsError(CbamVizError):
    """A checkpoint is missing, broken, of another architecture, or fails its hash."""


class ImageError(CbamVizError):
    """An input image cannot be used: unknown format, truncated, too large, empty."""
