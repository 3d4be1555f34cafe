r"""Acquisition optimization over the edits of a teacher (random sampling, evolutionary), and the
multiple-kernel proposal strategy."""

from botorch_archsearch.acquisition.edits import (
    EDIT_OPTIMIZATION_METHODS,
    EditOptimizationResult,
    optimize_acqf_edits,
)
from botorch_archsearch.acquisition.multi_kernel import (
    ACQUISITIONS,
    MultiKernelProposals,
    RandomChoice,
    propose_architectures,
)
from botorch_archsearch.acquisition.objective import (
    KERNEL_TARGETS,
    CompressionFactor,
    KnownFactorTransform,
    reward_factor,
)

__all__ = [
    "ACQUISITIONS",
    "CompressionFactor",
    "EDIT_OPTIMIZATION_METHODS",
    "EditOptimizationResult",
    "KERNEL_TARGETS",
    "KnownFactorTransform",
    "MultiKernelProposals",
    "RandomChoice",
    "optimize_acqf_edits",
    "propose_architectures",
    "reward_factor",
]
