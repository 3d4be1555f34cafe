r"""Tests of botorch_archsearch/utils/torchvision.py."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest
import torch

from botorch_archsearch.utils.torchvision import import_torchvision


def test_returns_the_torchvision_module_every_time():
    first = import_torchvision()
    second = import_torchvision()
    assert isinstance(first, types.ModuleType) and first.__name__ == "torchvision"
    assert second is first is sys.modules["torchvision"]
    assert hasattr(first, "models") and hasattr(first, "transforms")


def test_models_build_and_run():
    torchvision = import_torchvision()
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    assert sum(p.numel() for p in model.parameters()) == 11_181_642
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    default = torchvision.models.resnet18()
    assert default.fc.out_features == 1000


@pytest.mark.slow  # a subprocess
def test_fresh_interpreter():
    # In this process torchvision is already imported (by the fixtures); a fresh interpreter
    # checks the first import, then that a later plain ``import torchvision`` is the same module.
    code = (
        "from botorch_archsearch.utils.torchvision import import_torchvision\n"
        "tv = import_torchvision()\n"
        "assert import_torchvision() is tv\n"
        "import torchvision\n"
        "assert torchvision is tv\n"
        "model = tv.models.mobilenet_v2(num_classes=3)\n"
        "print(model.classifier[-1].out_features)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3"


def test_missing_torchvision_is_an_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(ImportError):
        import_torchvision()


@pytest.mark.slow  # two subprocesses
def test_a_torchvision_model_unpickles_in_a_fresh_process_after_the_marker(tmp_path):
    import pickle

    from botorch_archsearch.utils.torchvision import TorchvisionFirst, uses_torchvision

    model = import_torchvision().models.shufflenet_v2_x0_5(num_classes=3)
    assert uses_torchvision(model) and not uses_torchvision(torch.nn.Sequential(torch.nn.Linear(2, 2)))
    (tmp_path / "with.pkl").write_bytes(pickle.dumps((TorchvisionFirst(), model)))
    (tmp_path / "without.pkl").write_bytes(pickle.dumps((None, model)))
    code = (
        "import pickle, sys\n"
        "import botorch_archsearch.search.backends\n"  # what a student worker imports before its arguments
        "first, model = pickle.loads(open(sys.argv[1], 'rb').read())\n"
        "print(type(model).__name__, model.fc.out_features)\n"
    )
    for name, ok in (("with.pkl", True), ("without.pkl", False)):
        result = subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], check=False, capture_output=True,
                                text=True, timeout=120)
        if ok:
            assert result.returncode == 0 and result.stdout.split() == ["ShuffleNetV2", "3"], result.stderr[-2000:]
        elif torch.version.cuda is None:  # the control: the CUDA build's extension does not load with this torch
            assert result.returncode != 0 and "operator torchvision::nms does not exist" in result.stderr
