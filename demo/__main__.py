"""``python -m demo [--serve]`` (what `make demo` and `make demo-serve` run)."""

import sys

from demo.run import main

sys.exit(main())
