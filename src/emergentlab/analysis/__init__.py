"""Curves, emergence scores, verdicts, published checks (p^k, Wei et al.) and forecasts: pure functions of per-example
scores, rungs and published-score tables; nothing here runs a model or opens the store."""
