r"""botorch-archsearch: compress a trained CNN by Bayesian optimization over edits of it.

Implements "Learnable Embedding Space for Efficient Neural Architecture Compression" (ESNAC,
ICLR 2019) as BoTorch/GPyTorch pieces. The architecture domain lives in
:mod:`botorch_archsearch.graph` (trace, encode, build) and :mod:`botorch_archsearch.space`
(the remove/shrink/skip edits); the teacher zoo in :mod:`botorch_archsearch.models`.
"""

from botorch_archsearch.exceptions import (
    ArchSearchError,
    ArchSearchWarning,
    EncodingError,
    InvalidEditError,
    UnsupportedLayerError,
)
from botorch_archsearch.graph import (
    ArchGraph,
    build_student,
    count_flops,
    count_params,
    encode,
    expand,
    load_student,
    save_student,
    trace,
)
from botorch_archsearch.space import Edit, SearchSpace

__version__ = "0.1.0.dev0"

__all__ = [
    "ArchGraph",
    "ArchSearchError",
    "ArchSearchWarning",
    "Edit",
    "EncodingError",
    "InvalidEditError",
    "SearchSpace",
    "UnsupportedLayerError",
    "build_student",
    "count_flops",
    "count_params",
    "encode",
    "expand",
    "load_student",
    "save_student",
    "trace",
]
