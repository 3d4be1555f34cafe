r"""The tracer's dispatch tables: every handler exists, and the lookups by target and by name agree."""

from __future__ import annotations

import importlib

import pytest
from torch import nn

trace_module = importlib.import_module("botorch_archsearch.graph.trace")

MODULE_TABLES = ("_MODULE_HANDLERS", "_LAST_MODULE_HANDLERS")
SUBCLASS_TABLES = ("_MODULE_SUBCLASS_HANDLERS", "_LAST_MODULE_SUBCLASS_HANDLERS")
FUNCTION_TABLES = ("_ARITHMETIC_TARGETS", "_ARITHMETIC_NAMES", "_FUNCTION_TARGETS", "_FUNCTION_NAMES", "_METHOD_NAMES")


@pytest.mark.parametrize("table", MODULE_TABLES + FUNCTION_TABLES)
def test_every_handler_is_a_tracer_method(table):
    for handler in getattr(trace_module, table).values():
        assert callable(getattr(trace_module._Tracer, handler, None)), f"{table}: {handler}"


@pytest.mark.parametrize("table", SUBCLASS_TABLES)
def test_subclass_handlers_are_handlers_of_their_exact_classes(table):
    exact = getattr(trace_module, table.replace("_SUBCLASS", ""))
    for bases, handler in getattr(trace_module, table):
        for base in bases if isinstance(bases, tuple) else (bases,):
            assert exact[base] == handler


@pytest.mark.parametrize("targets, names", [("_ARITHMETIC_TARGETS", "_ARITHMETIC_NAMES"),
                                            ("_FUNCTION_TARGETS", "_FUNCTION_NAMES")])
def test_a_targets_own_name_names_no_other_handler(targets, names):
    by_name = {**trace_module._ARITHMETIC_NAMES, **trace_module._FUNCTION_NAMES}
    for target, handler in getattr(trace_module, targets).items():
        assert by_name.get(target.__name__) in (None, handler), target


def test_module_handler_falls_back_to_the_first_base_class():
    class Conv2d(nn.Conv2d):  # a subclass keeping its base's name
        pass

    handler = trace_module._module_handler
    args = (trace_module._MODULE_HANDLERS, trace_module._MODULE_SUBCLASS_HANDLERS)
    assert handler(Conv2d(1, 1, 1), *args) == "_conv_module"
    assert handler(nn.UpsamplingBilinear2d(scale_factor=2), *args) == "_upsample_module"
    assert handler(nn.Identity(), *args) is None
    assert handler(type("ReLU", (nn.ReLU,), {})(), *args) is None  # activations: exact classes only
