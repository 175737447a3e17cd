import sys

from cbam_viz.cli import main

sys.exit(main())
