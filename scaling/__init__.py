"""scaling: neural scaling-law fits and the experiments that feed them.

``scaling.fit``              the fitting library (numpy and scipy only)
``scaling.teacher_student``  teacher/student networks (needs torch)
``scaling.random_features``  random-feature models, the four regimes, the solvable model
``scaling.cnn``              CNN width families (needs torch)

``import scaling`` loads only the fitting library; the experiment families
load when first used (``scaling.teacher_student``, or ``import scaling.cnn``).
"""

from __future__ import annotations

import importlib
from typing import Any

from scaling.fit import *  # noqa: F403
from scaling.fit import __all__ as _fit_names

_FAMILIES = ("teacher_student", "random_features", "cnn")

__all__ = [*_fit_names, *_FAMILIES]


def __getattr__(name: str) -> Any:
    """Load an experiment family on first use (PEP 562), keeping ``import scaling`` light."""
    if name in _FAMILIES:
        return importlib.import_module(f"scaling.{name}")
    raise AttributeError(f"module 'scaling' has no attribute {name!r}")
