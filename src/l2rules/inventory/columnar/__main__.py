"""``python -m l2rules.inventory.columnar``: the SQLite writer's process (see ``sqlite_writer.main``)."""

import sys

from .sqlite_writer import main

sys.exit(main())
