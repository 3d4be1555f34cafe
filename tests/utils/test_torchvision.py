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
