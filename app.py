"""cbam_viz web app: ResNet-50, SE-ResNet-50 and CBAM-ResNet-50 side by side.

Run ``python app.py`` (http://127.0.0.1:7860); ``python app.py --help`` lists the options. The page is built from
the sections in ``cbam_viz/ui/sections/``; each panel is declared once in ``cbam_viz/ui/panels/registry.py``.
"""

from __future__ import annotations

import sys

from cbam_viz.ui.layout import main

if __name__ == "__main__":
    sys.exit(main())
