"""``ce_lab.train(...)`` and ``ce_lab.compare(...)``: the API's two entry points share their
names with the packages ``ce_lab.train`` and ``ce_lab.compare``.

Python sets a package's attribute to a subpackage as soon as the subpackage is imported, so a
function ``ce_lab.train`` would be replaced by the module at the first ``import ce_lab.train.x``.
Instead the two packages are made callable: calling the module calls the API function
(``ce_lab.api.train`` / ``ce_lab.api.compare``), and its other names stay as they are.
"""

from __future__ import annotations

import sys
import types


def make_callable(package: str, function: str) -> None:
    """Calling the module ``package`` calls ``ce_lab.api.<function>``."""
    module = sys.modules[package]

    class CallableModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            from ce_lab import api

            return getattr(api, function)(*args, **kwargs)

    CallableModule.__name__ = f"callable module {package}"
    module.__class__ = CallableModule
