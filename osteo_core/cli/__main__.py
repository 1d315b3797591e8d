"""``python -m osteo_core.cli``: the ``osteo`` command."""

import sys

from osteo_core.cli import main

sys.exit(main())
