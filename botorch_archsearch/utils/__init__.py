r"""Small utilities shared by the package."""

from botorch_archsearch.utils.files import make_dir
from botorch_archsearch.utils.precision import native_bf16, use_bf16
from botorch_archsearch.utils.threads import intra_op_threads
from botorch_archsearch.utils.torchvision import import_torchvision
from botorch_archsearch.utils.validation import check_bool, check_choice, check_float, check_int, is_int

__all__ = [
    "check_bool",
    "check_choice",
    "check_float",
    "check_int",
    "import_torchvision",
    "intra_op_threads",
    "is_int",
    "make_dir",
    "native_bf16",
    "use_bf16",
]
