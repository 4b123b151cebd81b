"""Heavy libraries imported on first use, so that commands which never need them start faster.

``from ._lazy import pandas as pd`` gives a stand-in whose first attribute access imports
pandas; type annotations (strings under ``from __future__ import annotations``) never touch it.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING


class _LazyModule(types.ModuleType):
    def __getattr__(self, attr: str):
        module = importlib.import_module(self.__name__)
        return getattr(module, attr)


def loaded(name: str) -> types.ModuleType | None:
    """The module if something already imported it, else None (without importing it)."""
    return sys.modules.get(name)


if TYPE_CHECKING:  # type checkers see pandas itself (and its stubs), not the stand-in
    import pandas
else:
    pandas = _LazyModule("pandas")
