"""scaling: neural scaling-law fits and the experiments that feed them.

The fitters (:mod:`scaling.fit`) need only numpy and scipy; the experiment
modules that train networks (e.g. :mod:`scaling.cnn`) import torch themselves,
so ``import scaling`` never does.
"""

from scaling._fit_plot import plot_fit
from scaling.fit import (
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
    "FIGURE2_THRESHOLD",
    "DimensionComparison",
    "DimensionPrediction",
    "PowerLawFit",
    "ThresholdCrossing",
    "circle_window",
    "compare_alpha_to_dimension",
    "fit_offset_power_law",
    "fit_power_law",
    "lower_envelope",
    "n_max_at_threshold",
    "plot_fit",
    "predicted_dimension",
]
