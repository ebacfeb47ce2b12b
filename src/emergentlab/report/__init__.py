"""Renders `Section`s: HTML report, PNG figures, formula-safe CSVs, inert terminal text. Computes nothing."""
