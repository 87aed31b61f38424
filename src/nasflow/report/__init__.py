"""Paper-style tables and plots."""

from nasflow.report.plots import plot_tfs_vs_predicted

__all__ = ["plot_tfs_vs_predicted"]
