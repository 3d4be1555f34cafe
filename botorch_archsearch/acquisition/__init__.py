r"""Acquisition optimization over the edits of a teacher (random sampling, evolutionary), and the
multiple-kernel proposal strategy."""

from botorch_archsearch.acquisition.edits import (
    EDIT_OPTIMIZATION_METHODS,
    EditOptimizationResult,
    optimize_acqf_edits,
)
from botorch_archsearch.acquisition.multi_kernel import ACQUISITIONS, MultiKernelProposals, propose_architectures

__all__ = [
    "ACQUISITIONS",
    "EDIT_OPTIMIZATION_METHODS",
    "EditOptimizationResult",
    "MultiKernelProposals",
    "optimize_acqf_edits",
    "propose_architectures",
]
