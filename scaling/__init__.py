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
from scaling.random_features import (
    FeaturePopulation,
    RandomReLUFeatures,
    feature_population,
    gaussian_projection,
    infinite_data_loss,
    linear_model_loss,
    power_law_population,
    relu_feature_population,
    sampled_test_loss,
)
from scaling.regimes import (
    REGIMES,
    DualityCheck,
    FeatureSource,
    SpectrumFit,
    SweepCache,
    SweepRow,
    duality_check,
    fit_regime,
    fit_spectrum,
    regime_point,
    sweep_regime,
)
from scaling.replica import replica_kappa, replica_loss
from scaling.report import summarize, write_report
from scaling.reproduce import reproduce, reproduction_config
from scaling.solvable import SolvableRow, SolvableSweep, solvable_loss, solvable_sweep
from scaling.student import make_student, student_widths
from scaling.sweep import SweepConfig, read_results, run_sweep
from scaling.teacher import (
    LatentGaussianTeacher,
    ProductTeacher,
    RandomTeacher,
    latent_gaussian_teacher,
    random_teacher,
    vetted_teacher,
    vetting_score,
)
from scaling.train import SCHEDULES, Phase, Schedule, StudentResult, get_schedule, train_students

__all__ = [
    "SCHEDULES",
    "LatentGaussianTeacher",
    "Phase",
    "ProductTeacher",
    "RandomTeacher",
    "Schedule",
    "StudentResult",
    "SweepConfig",
    "get_schedule",
    "latent_gaussian_teacher",
    "make_student",
    "random_teacher",
    "read_results",
    "reproduce",
    "reproduction_config",
    "run_sweep",
    "student_widths",
    "summarize",
    "train_students",
    "vetted_teacher",
    "vetting_score",
    "write_report",
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
    "REGIMES",
    "DualityCheck",
    "FeaturePopulation",
    "FeatureSource",
    "RandomReLUFeatures",
    "SolvableRow",
    "SolvableSweep",
    "SpectrumFit",
    "SweepCache",
    "SweepRow",
    "duality_check",
    "feature_population",
    "fit_regime",
    "fit_spectrum",
    "gaussian_projection",
    "infinite_data_loss",
    "linear_model_loss",
    "power_law_population",
    "regime_point",
    "relu_feature_population",
    "replica_kappa",
    "replica_loss",
    "sampled_test_loss",
    "solvable_loss",
    "solvable_sweep",
    "sweep_regime",
]
