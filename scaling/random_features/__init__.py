"""Random-feature models (Bahri et al. 2.3, supplement D) and the solvable latent-space model
(Maloney, Roberts & Sully): the four scaling regimes, the replica theory curve, their report
and the ``idest regimes`` command.
"""

from scaling.random_features._features import (
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
from scaling.random_features._regimes import (
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
from scaling.random_features._replica import (
    replica_kappa,
    replica_loss,
)
from scaling.random_features._report import (
    ReportConfig,
    default_config,
    run_report,
)
from scaling.random_features._solvable import (
    SolvableRow,
    SolvableSweep,
    solvable_loss,
    solvable_sweep,
)

__all__ = [
    "DualityCheck", "FeaturePopulation", "FeatureSource", "REGIMES", "RandomReLUFeatures",
    "ReportConfig", "SolvableRow", "SolvableSweep", "SpectrumFit", "SweepCache", "SweepRow",
    "default_config", "duality_check", "feature_population", "fit_regime", "fit_spectrum",
    "gaussian_projection", "infinite_data_loss", "linear_model_loss", "power_law_population",
    "regime_point", "relu_feature_population", "replica_kappa", "replica_loss", "run_report",
    "sampled_test_loss", "solvable_loss", "solvable_sweep", "sweep_regime",
]
