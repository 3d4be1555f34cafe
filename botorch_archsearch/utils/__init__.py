r"""Small utilities shared by the package."""

from botorch_archsearch.utils.files import make_dir
from botorch_archsearch.utils.precision import native_bf16, use_bf16
from botorch_archsearch.utils.threads import intra_op_threads
from botorch_archsearch.utils.torchvision import import_torchvision

__all__ = ["import_torchvision", "intra_op_threads", "make_dir", "native_bf16", "use_bf16"]
