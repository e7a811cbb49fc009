"""Localization quality: `predict.py` (run a model over a split, grids and curves),
`quality.py` (the test-split report: verdicts, AUROCs, AUPRO per defect, classes),
`cli.py` (eiad eval localization)."""
