"""Recurring analyses: the schedule and its store (model), what the fronts call (service), what changed
between two runs (changes)."""
