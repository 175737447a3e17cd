"""The analyses the open tabs can still redraw from, held by the engine under one byte budget.

A tab's ``gr.State`` keeps only a small ``Result`` (a key and the picture's name). The analyses themselves (the
display-size picture and every map, about 2.4 MB for a 1600x1200 photo) live here, least recently used first out once
the budget is spent, so memory stays flat however many visitors come (Gradio's own state cap counts sessions, not
bytes). A tab whose analysis was dropped is told to press Analyse again, in one line.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from cbam_viz.analysis.results import Analysis
from cbam_viz.errors import CbamVizError
from cbam_viz.i18n.language import text

RESULTS_BUDGET_BYTES = 96_000_000  # about 40 analyses of 1600x1200 photos, thousands of demo shapes


def analysis_bytes(analysis: Analysis) -> int:
    """What one analysis holds in pixels and maps (the rest is small)."""
    width, height = analysis.image.size
    size = width * height * len(analysis.image.getbands())
    for result in analysis.models.values():
        maps = [result.cam, *result.spatial_attention.values(), *result.channel_attention.values()]
        size += sum(np.asarray(value).nbytes for value in maps if value is not None)
    return size


class AnalysisCache:
    """Analyses by key, least recently used dropped first past ``budget`` bytes (thread-safe)."""

    def __init__(self, budget: int = RESULTS_BUDGET_BYTES) -> None:
        self.budget = budget
        self._items: OrderedDict[str, tuple[Analysis, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.used = 0

    def put(self, analysis: Analysis) -> str:
        """Keep an analysis (the least recently used ones go past the budget); -> its key."""
        key, size = uuid.uuid4().hex, analysis_bytes(analysis)
        with self._lock:
            self._items[key] = (analysis, size)
            self.used += size
            while self.used > self.budget and len(self._items) > 1:
                _, (_, dropped) = self._items.popitem(last=False)
                self.used -= dropped
        return key

    def get(self, key: str) -> Analysis | None:
        """The analysis under ``key``, or None once it was dropped."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def __len__(self) -> int:
        return len(self._items)


RESULTS = AnalysisCache()


@dataclass
class Result:
    """What a browser tab keeps between events: a key to its analysis, and the picture's name (download names)."""

    key: str
    picture: str
    cache: AnalysisCache = field(default=RESULTS, repr=False, compare=False)

    @classmethod
    def keep(cls, analysis: Analysis, picture: str, cache: AnalysisCache = RESULTS) -> Result:
        """Cache ``analysis`` and remember its key and the picture's name."""
        return cls(cache.put(analysis), picture, cache)

    @property
    def analysis(self) -> Analysis:
        """The tab's analysis; a one-line error once the cache dropped it."""
        analysis = self.cache.get(self.key)
        if analysis is None:
            raise CbamVizError(text("error.dropped"))
        return analysis
