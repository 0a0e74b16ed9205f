"""``python -m benchmarks.detection``: see :mod:`benchmarks.detection.cli`."""
import sys

from benchmarks.detection.cli import main

sys.exit(main())
