r"""botorch-archsearch: compress a trained CNN by Bayesian optimization over edits of it.

Implements "Learnable Embedding Space for Efficient Neural Architecture Compression" (ESNAC,
ICLR 2019) as BoTorch/GPyTorch pieces. The architecture domain lives in
:mod:`botorch_archsearch.graph` (trace, encode, build) and :mod:`botorch_archsearch.space`
(the remove/shrink/skip edits); the teacher zoo in :mod:`botorch_archsearch.models`; the
learned kernel, GP and acquisition in :mod:`~botorch_archsearch.kernels`,
:mod:`~botorch_archsearch.gp` and :mod:`~botorch_archsearch.acquisition`; datasets, teachers and
distillation in :mod:`~botorch_archsearch.evaluation`; the search itself in
:mod:`botorch_archsearch.search` (:func:`~botorch_archsearch.search.compress`).

Importing the package sets ``OMP_WAIT_POLICY=PASSIVE`` unless it is already set (it only takes
effect if torch was not imported before): libgomp's default busy-waiting makes the many small
operations of a search 10-40x slower when anything else shares a small machine's cores.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
from botorch_archsearch.space import Edit, SearchSpace, Student

__version__ = "0.1.0.dev0"

__all__ = [
    "ArchGraph",
    "ArchSearchError",
    "ArchSearchWarning",
    "Edit",
    "EncodingError",
    "InvalidEditError",
    "SearchSpace",
    "Student",
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
