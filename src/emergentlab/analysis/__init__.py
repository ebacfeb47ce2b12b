"""Curves, emergence scores, verdicts, forecasts: pure functions of scores and rungs (never re-runs a model)."""
