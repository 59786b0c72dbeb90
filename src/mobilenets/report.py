"""Plots and one self-contained HTML page for a comparison (kept as an import path).

    mobilenets compare v1-1.00-224 v2-1.00-224 --threads 1,2 --out compare/   # compare/report.html

The code lives in `mobilenets.compare.plots` and `mobilenets.compare.report`.
"""

from mobilenets.compare.plots import (FORMAT_NAMES, plot_latency_accuracy, plot_macs_latency,
                                      write_plots)
from mobilenets.compare.report import (data_uri, environment, model_sections, render_report,
                                       thumbnail_uri, write_report)

__all__ = ["FORMAT_NAMES", "plot_latency_accuracy", "plot_macs_latency", "write_plots", "data_uri",
           "environment", "model_sections", "render_report", "thumbnail_uri", "write_report"]
