"""scaling: neural scaling-law fits and the experiments that feed them.

The fitters (:mod:`scaling.fit`) need only numpy and scipy; the experiment
modules that train networks (e.g. :mod:`scaling.cnn`) import torch themselves,
so ``import scaling`` never does.
"""

from scaling.fit import (
    PowerLawFit,
    circle_window,
    fit_power_law,
    lower_envelope,
)

__all__ = [
    "PowerLawFit",
    "circle_window",
    "fit_power_law",
    "lower_envelope",
]
