r"""Tests of botorch_archsearch/utils/precision.py (where bf16 autocast is the default)."""

from __future__ import annotations

import pytest
import torch

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.utils import native_bf16, use_bf16
from botorch_archsearch.utils import precision


@pytest.fixture(autouse=True)
def _fresh_probe():
    precision._cpu_amx.cache_clear()
    yield
    precision._cpu_amx.cache_clear()


@pytest.mark.parametrize("amx", [True, False])
def test_cpu_follows_the_amx_probe(monkeypatch, amx):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    assert native_bf16("cpu") is amx
    assert native_bf16(torch.device("cpu")) is amx


def test_a_failing_probe_means_float32(monkeypatch):
    def broken():
        raise RuntimeError("no cpuinfo")

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", broken, raising=False)
    assert native_bf16("cpu") is False


def test_without_torch_probe_reads_cpuinfo(monkeypatch, tmp_path):
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    flags = {"with": "flags\t\t: fpu avx512f amx_bf16 amx_tile\n", "without": "flags\t\t: fpu avx2\n"}
    real_open = open

    for name, expected in (("with", True), ("without", False)):
        info = tmp_path / name
        info.write_text("processor\t: 0\n" + flags[name])
        monkeypatch.setattr("builtins.open", lambda path, *a, **k: real_open(info if path == "/proc/cpuinfo" else path, *a, **k))
        precision._cpu_amx.cache_clear()
        assert native_bf16("cpu") is expected


def test_cuda_and_other_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert native_bf16("cuda") is False
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    asked = []

    def supported(including_emulation=True):
        asked.append(including_emulation)
        return not including_emulation  # an Ampere GPU: native, no emulation needed

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", supported)
    assert native_bf16("cuda:0") is True
    assert asked == [False]  # emulated bf16 (pre-Ampere) does not count
    assert native_bf16("meta") is False


def test_use_bf16_explicit_wins_none_asks_the_device(monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    assert use_bf16(None, "cpu") is True
    assert use_bf16(False, "cpu") is False
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    assert use_bf16(None, "cpu") is False
    assert use_bf16(True, "cpu") is True
    for bad in ("yes", 1, 0.0):
        with pytest.raises(ArchSearchError, match="bf16 must be True, False or None"):
            use_bf16(bad, "cpu")
