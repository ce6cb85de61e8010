"""``ce-lab entropy | xent | saturation | stability``: the case for cross-entropy, computed.

One module per command: each parses its options, calls ``ce_lab.theory``, and renders the
report as a table (``ce_lab.theory.render``) or JSON (the report's ``to_dict``). In JSON,
non-finite numbers are the strings "inf", "-inf" and "nan" (never bare NaN/Infinity), so any
parser reads it.
"""
