"""``python -m medsam2`` (and ``torchrun ... -m medsam2 evaluate|segment-batch ...``)."""

import sys

from medsam2.cli.main import main

sys.exit(main())
