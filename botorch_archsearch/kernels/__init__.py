r"""The learned architecture kernel: a Bi-LSTM embedding under an RBF (paper section 3.1)."""

from botorch_archsearch.kernels.architecture import ArchitectureKernel
from botorch_archsearch.kernels.embedding import ATTRIBUTE_SCALE, BiLSTMEmbedding, scale_attributes

__all__ = ["ATTRIBUTE_SCALE", "ArchitectureKernel", "BiLSTMEmbedding", "scale_attributes"]
