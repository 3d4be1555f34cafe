r"""The GP over architectures and the fitting of its learned kernel."""

from botorch_archsearch.gp.fit import (
    KERNEL_NAMES,
    OBJECTIVES,
    WIDTH_INITS,
    FitResult,
    MovingAverageStoppingCriterion,
    architecture_gp,
    fit_architecture_gp,
    loo_objective,
    transferred_gp,
)
from botorch_archsearch.gp.model import ArchitectureGP

__all__ = [
    "ArchitectureGP",
    "FitResult",
    "KERNEL_NAMES",
    "MovingAverageStoppingCriterion",
    "OBJECTIVES",
    "WIDTH_INITS",
    "architecture_gp",
    "fit_architecture_gp",
    "loo_objective",
    "transferred_gp",
]
