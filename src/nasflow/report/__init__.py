"""Every table and plot of the paper and the case study: markdown, predictor tables, search
tables, MT plots, LTS plots, and the rendered-report check."""

from nasflow.report.plots import plot_tfs_vs_predicted

__all__ = ["plot_tfs_vs_predicted"]
