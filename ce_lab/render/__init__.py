"""Renderings of a comparison: rich tables, Markdown, csv/json, PNG plots and report.md.

Each module turns the data of ce_lab/comparison/build.py and paired.py into one format; none computes.
"""
