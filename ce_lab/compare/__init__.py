"""``ce-lab compare``: tables, paired statistics, plots and a report over finished runs.

Light to import: numpy, scipy and matplotlib load inside the functions that need them.

The package itself is callable: ``ce_lab.compare(["ce", "mse"], seeds=[0, 1])`` is the Python
API's ``ce_lab.api.compare`` (see ce_lab/_callable.py for why).
"""

from ce_lab._callable import make_callable
from ce_lab.compare.compare import (
    ComparisonResult,
    build_configs,
    train_and_compare,
    write_comparison,
)

__all__ = [
    "ComparisonResult",
    "build_configs",
    "train_and_compare",
    "write_comparison",
]

make_callable(__name__, "compare")
