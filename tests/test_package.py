"""Package-wide conventions: sorted explicit exports, importable without Hydra."""

import importlib
import pkgutil
import subprocess
import sys

import pytest

import botorch_archsearch


def _modules():
    yield botorch_archsearch
    for info in pkgutil.walk_packages(botorch_archsearch.__path__, "botorch_archsearch."):
        if info.name.endswith("__main__"):
            continue
        yield importlib.import_module(info.name)


def test_every_module_has_a_sorted_all_of_existing_names():
    for module in _modules():
        names = getattr(module, "__all__", None)
        assert names is not None, f"{module.__name__} has no __all__"
        assert list(names) == sorted(names), f"{module.__name__}.__all__ is not sorted"
        missing = [n for n in names if not hasattr(module, n)]
        assert not missing, f"{module.__name__}.__all__ names missing attributes {missing}"


@pytest.mark.slow  # a subprocess
def test_library_imports_without_hydra():
    code = (
        "import sys; sys.modules['hydra'] = None; sys.modules['omegaconf'] = None\n"
        "import botorch_archsearch, botorch_archsearch.graph, botorch_archsearch.space, botorch_archsearch.models\n"
        "import botorch_archsearch.gp, botorch_archsearch.acquisition, botorch_archsearch.evaluation\n"
        "import botorch_archsearch.search\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
