"""Launchers of every run of the paper's Tables 1-4 (``python -m experiments.paper_tables.table2 --dry-run``)."""
