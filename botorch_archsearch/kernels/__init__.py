r"""The learned architecture kernel: a Bi-LSTM embedding under an RBF (paper section 3.1); the
Weisfeiler-Lehman and edit-vector feature maps of the other surrogates."""

from botorch_archsearch.kernels.architecture import ArchitectureKernel
from botorch_archsearch.kernels.embedding import ATTRIBUTE_SCALE, BiLSTMEmbedding, scale_attributes
from botorch_archsearch.kernels.features import EditFeatures, WLFeatures, edit_vector, wl_labels
from botorch_archsearch.kernels.transfer import SavedKernel, load_kernel, save_kernel

__all__ = [
    "ATTRIBUTE_SCALE",
    "ArchitectureKernel",
    "BiLSTMEmbedding",
    "EditFeatures",
    "SavedKernel",
    "WLFeatures",
    "edit_vector",
    "load_kernel",
    "save_kernel",
    "scale_attributes",
    "wl_labels",
]
