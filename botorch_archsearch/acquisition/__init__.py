r"""Acquisition optimization over the edits of a teacher (random sampling, evolutionary)."""

from botorch_archsearch.acquisition.edits import (
    EDIT_OPTIMIZATION_METHODS,
    EditOptimizationResult,
    optimize_acqf_edits,
)

__all__ = [
    "EDIT_OPTIMIZATION_METHODS",
    "EditOptimizationResult",
    "optimize_acqf_edits",
]
