"""The scaling-law fitting library (Sharma & Kaplan, appendix A.1): numpy and scipy only.

``_power_law``  L(N) ∝ N^(−α) and L∞ + c·N^(−α) fits, the circle-rule window, the lower
                envelope, N_max at a loss threshold, 4/α against a measured dimension
``_circle``     the radius of the circle through a set of points (the window rule)
``_plot``       fits, intervals (open-ended ones marked) and 4/α against a dimension, drawn
                on given matplotlib axes (nothing imports matplotlib until called)
``_cli``        the ``idest fit`` command
"""

from scaling.fit._plot import (
    plot_dimension_comparison,
    plot_fit,
    plot_intervals,
)
from scaling.fit._power_law import (
    FIGURE2_THRESHOLD,
    DimensionComparison,
    DimensionPrediction,
    PowerLawFit,
    ThresholdCrossing,
    circle_window,
    compare_alpha_to_dimension,
    fit_offset_power_law,
    fit_power_law,
    lower_envelope,
    n_max_at_threshold,
    predicted_dimension,
)

__all__ = [
    "DimensionComparison", "DimensionPrediction", "FIGURE2_THRESHOLD", "PowerLawFit",
    "ThresholdCrossing", "circle_window", "compare_alpha_to_dimension", "fit_offset_power_law",
    "fit_power_law", "lower_envelope", "n_max_at_threshold", "plot_dimension_comparison",
    "plot_fit", "plot_intervals", "predicted_dimension",
]
