"""Every table and plot of the paper and the case study: markdown, predictor tables (and the
extra Table 1 rows), search tables, MT plots, LTS plots, and the rendered-report check.

Nothing is imported here: `nasflow` commands register their options from these modules without
loading pandas or matplotlib.
"""
