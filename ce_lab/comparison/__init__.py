"""Comparison of finished runs: grouping into a table (``build``), paired statistics
(``paired``), the tuning rule (``tuning``) and the comparison folder's files (``compare``).
It trains nothing: ``ce_lab.lab`` trains and then calls it.

Light to import: numpy, scipy and matplotlib load inside the functions that need them.
"""
