"""Evals: golden sets, metrics and the runs that gate CI."""
