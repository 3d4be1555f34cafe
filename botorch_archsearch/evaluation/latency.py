r"""Measured inference latency of a network on a device (``evaluation.latency_batch``).

FLOPs are not time: a student with fewer FLOPs can be slower on a device (depthwise layers, many
small layers, memory-bound shapes). :func:`measure_latency` times a network's forward pass in
inference mode with ``torch.utils.benchmark`` (warm-up, then the median of blocked repeats, CUDA
synchronised), at batch 1 and a larger batch, in the contiguous layout and, for image models,
channels-last, and keeps channels-last where it is faster and computes the same outputs.
"""

from __future__ import annotations

import copy
import platform
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils import benchmark

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.utils.validation import check_float, check_int

WARMUP = 3
"""Forward passes before timing (allocator, oneDNN primitive caches, CUDA kernels)."""


@dataclass(frozen=True)
class Latency:
    r"""A network's measured latency.

    Attributes:
        device: The device, in words (``"cpu: <processor> (2 threads)"``, ``"cuda: <name>"``).
        host: The machine it was measured on (a Dask worker's host name).
        batch_sizes: The batch sizes timed.
        milliseconds: The median time of one forward pass at each batch size, in milliseconds.
        channels_last: Whether the times are of the channels-last layout (faster and the same
            outputs) rather than the contiguous one.
    """

    device: str
    host: str
    batch_sizes: tuple[int, ...]
    milliseconds: tuple[float, ...]
    channels_last: bool

    def to_dict(self) -> dict[str, Any]:
        r"""The journal's ``latency`` entry: ``device``, ``host``, ``channels_last`` and ``ms``
        (batch size, as a string, to milliseconds)."""
        return {"device": self.device, "host": self.host, "channels_last": self.channels_last,
                "ms": {str(b): ms for b, ms in zip(self.batch_sizes, self.milliseconds)}}


def device_name(device: str | torch.device) -> str:
    r"""The device in words: the CUDA device's name, or the CPU's processor and torch's threads."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    processor = _cpu_model() or platform.processor() or platform.machine()
    threads = torch.get_num_threads()
    return f"cpu: {processor} ({threads} thread{'' if threads == 1 else 's'})"


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    device: str | torch.device = "cpu",
    batch_sizes: Sequence[int] = (1, 32),
    min_run_time: float = 0.1,
    channels_last: bool | None = None,
    num_threads: int | None = None,
) -> Latency:
    r"""Time ``model``'s forward pass on ``device`` (inference mode, float32, random input).

    Args:
        model: The network (not modified: a copy is timed).
        input_shape: The shape of one input, e.g. ``(C, H, W)``.
        device: Where to run it.
        batch_sizes: The batch sizes to time (each at least 1).
        min_run_time: Seconds of repeats per measurement (``blocked_autorange``), after
            :data:`WARMUP` passes.
        channels_last: ``None``: time both layouts for 4-d inputs and keep channels-last where it
            is faster at the largest batch and its outputs match the contiguous ones (float32
            tolerance); ``True``/``False``: that layout only.
        num_threads: torch's intra-op threads while timing (``None``: the current setting).

    Returns:
        A :class:`Latency`.
    """
    sizes = tuple(check_int("batch size", b, 1, where="measure_latency") for b in batch_sizes)
    if not sizes:
        raise ArchSearchError("measure_latency: give at least one batch size.")
    check_float("min_run_time", min_run_time, 0, exclusive_minimum=True, where="measure_latency")
    device = torch.device(device)
    net = copy.deepcopy(model).eval().to(device)
    image = len(input_shape) == 3
    layouts = [False, True] if channels_last is None and image else [bool(channels_last) and image]
    generator = torch.Generator().manual_seed(0)
    inputs = {b: torch.randn(b, *input_shape, generator=generator).to(device) for b in sizes}
    times: dict[bool, list[float]] = {}
    outputs: dict[bool, torch.Tensor] = {}
    with torch.inference_mode():
        for layout in layouts:
            fmt = torch.channels_last if layout else torch.contiguous_format
            m = net.to(memory_format=fmt)
            times[layout] = []
            for b in sizes:
                x = inputs[b].contiguous(memory_format=fmt)
                for _ in range(WARMUP):
                    out = m(x)
                timer = benchmark.Timer(stmt="m(x)", globals={"m": m, "x": x},
                                        num_threads=num_threads or torch.get_num_threads())
                times[layout].append(timer.blocked_autorange(min_run_time=min_run_time).median * 1e3)
            outputs[layout] = out.float().cpu()
    chosen = layouts[0]
    if len(layouts) == 2:
        same = torch.allclose(outputs[True], outputs[False], rtol=1e-4, atol=1e-5 * max(1.0, float(
            outputs[False].abs().max())))
        chosen = same and times[True][-1] < times[False][-1]
    return Latency(device=device_name(device), host=socket.gethostname(), batch_sizes=sizes,
                   milliseconds=tuple(times[chosen]), channels_last=chosen)


_TIMING = threading.Lock()


def graph_latency(graph: Any, *, device: str | torch.device = "cpu", min_run_time: float = 0.05,
                  num_threads: int = 1) -> float:
    r"""The latency at batch 1, in milliseconds, of the network of an architecture (an
    :class:`~botorch_archsearch.graph.ArchGraph`), timed untrained: its weights do not change the
    time, so a candidate's latency is known before it is trained (``latency`` constraints,
    :mod:`botorch_archsearch.search.constraints`). The faster layout, as :func:`measure_latency`,
    on ``num_threads`` intra-op threads (a CPU), one network at a time in a process (kernels
    scored in threads do not time each other's load)."""
    from botorch_archsearch.graph import build_student  # the graph package does not import this one

    net = build_student(graph)
    with _TIMING:
        return measure_latency(net, graph.input_shape, device=device, batch_sizes=(1,), min_run_time=min_run_time,
                               num_threads=num_threads).milliseconds[0]


__all__ = ["Latency", "WARMUP", "device_name", "graph_latency", "measure_latency"]
