"""Experiments and studies of tglc_zoo (not installed): run them from the repository root with
``python -m experiments.<name>``. They use the installed package and write what ``docs/`` shows."""
