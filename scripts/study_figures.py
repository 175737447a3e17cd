"""The README's study results from a study folder: the summary table and the paired comparisons in words (printed as
Markdown, the Study section's own words) and the atlas figure (written as a PNG).

    PYTHONPATH=. python scripts/study_figures.py STUDY_DIR --atlas docs/study-atlas.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image

from cbam_viz.errors import CbamVizError
from cbam_viz.i18n.language import using
from cbam_viz.render.atlas import atlas_figure
from cbam_viz.ui import study as studies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="a study folder (python -m cbam_viz study ... --out DIR)")
    parser.add_argument("--atlas", type=Path, default=None, help="write the atlas figure here (PNG)")
    args = parser.parse_args(argv)
    try:
        study = studies.Shelf.of([args.study], bundled=None).open(args.study.resolve().name)
    except CbamVizError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    with using("en"):
        print(studies.about(study), end="\n\n")
        print(studies.summary_table(study), end="\n\n")
        print(studies.all_comparison_words(study))
        if args.atlas is not None:
            figure = atlas_figure(study.summary.get("atlas") or {}, lineup=study.lineup)
            if figure is None:
                print("error: the study has no atlas", file=sys.stderr)
                return 2
            Image.fromarray(figure).save(args.atlas, optimize=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
