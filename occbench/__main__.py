import sys

from occbench.cli import main

sys.exit(main())
