import sys

from cbam_viz.cli.main import main

sys.exit(main())
