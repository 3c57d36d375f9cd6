"""``python -m apps.cli``: the ``churnwatch`` command, as the tests and the demo start it."""

import sys

from apps.cli.entry import main

if __name__ == "__main__":
    sys.exit(main())
