"""``ce-lab compare``: tables, paired statistics, plots and a report over finished runs.

Light to import: numpy, scipy and matplotlib load inside the functions that need them.
"""

from ce_lab.comparison.compare import (
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
