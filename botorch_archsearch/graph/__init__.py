r"""Architecture graphs: trace a network, encode it for the GP, count its cost, build it."""

from botorch_archsearch.graph.arch_graph import (
    CHANNELWISE_TYPES,
    LAYER_TYPES,
    REMOVABLE_TYPES,
    ArchGraph,
    LayerSpec,
    LayerTable,
)
from botorch_archsearch.graph.build import InheritedGraph, StudentNet, build_student, load_student, save_student
from botorch_archsearch.graph.counting import count_flops, count_params
from botorch_archsearch.graph.encoding import DEFAULT_MAX_EDGES, encode, expand, num_features
from botorch_archsearch.graph.trace import SUPPORTED_FUNCTIONS, SUPPORTED_MODULES, trace

__all__ = [
    "ArchGraph",
    "CHANNELWISE_TYPES",
    "DEFAULT_MAX_EDGES",
    "InheritedGraph",
    "LAYER_TYPES",
    "LayerSpec",
    "LayerTable",
    "REMOVABLE_TYPES",
    "SUPPORTED_FUNCTIONS",
    "SUPPORTED_MODULES",
    "StudentNet",
    "build_student",
    "count_flops",
    "count_params",
    "encode",
    "expand",
    "load_student",
    "num_features",
    "save_student",
    "trace",
]
