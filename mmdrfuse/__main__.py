import sys

from mmdrfuse.cli import main

sys.exit(main())
