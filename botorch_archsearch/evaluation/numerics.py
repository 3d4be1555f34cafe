r"""The numerics guard: students train channels-last only where that computes correctly here.

Channels-last convolutions are faster on CPUs and GPUs, but their kernels differ by machine:
oneDNN's AVX2 code path (CPUs without AVX-512, or any x86 CPU under
``ONEDNN_MAX_CPU_ISA=AVX2``) returns wrong weight gradients for channels-last ``Conv2d`` with a
1x1 kernel, stride 2 and 2-7 input channels (the downsampling shortcut of a shrunk ResNet),
while the contiguous layout is right. The wrong results vary from run to run (one check of a
configuration can pass by chance), and the same kernels corrupt memory, so the guard works at
two levels:

- the machine: a canary of such convolutions (1x1, stride 2, 2-7 input channels, repeated) runs
  once per process (started in the background by :func:`start_probe`); if any of it is wrong,
  crashes or hangs, channels-last convolutions are not trusted on this machine at all and every
  network trains in the contiguous layout;
- each convolution: otherwise, before a network trains channels-last, each distinct convolution
  it holds (channels, kernel, stride, padding, groups, input size, batch size, dtype) is run
  forward and backward in both layouts on random data (at most 16 images: the wrong kernels show
  at any batch size), and where they disagree compared with a float64 contiguous reference; a
  configuration whose channels-last result is clearly worse than the contiguous one's is bad
  (with a warning naming it), and a network holding one trains in the contiguous layout.

A wrong kernel can also corrupt memory and abort the process that runs it, so the checks run in
a probe process (``python -m botorch_archsearch.evaluation._numerics_probe``, restarted after a
crash); a configuration whose check kills the probe, or does not finish in 2 minutes (oneDNN's
AVX2 backward has also been seen to hang), is bad. Verdicts are cached per process, so a search
pays for each configuration once.
"""

from __future__ import annotations

import atexit
import json
import logging
import select
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable
from typing import NamedTuple

import torch
from torch import Tensor, nn

logger = logging.getLogger("botorch_archsearch")


class ConvConfig(NamedTuple):
    r"""A convolution as the kernels see it: its hyper-parameters and the input's shape.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias: Those of
            the ``nn.Conv2d`` (``padding`` as the module holds it, a tuple or a string).
        input_shape: ``(batch, in_channels, height, width)``.
        dtype: ``"float32"`` or ``"bfloat16"`` (autocast).
        device: The device type (``"cpu"``, ``"cuda"``).
    """

    in_channels: int
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...] | str
    dilation: tuple[int, ...]
    groups: int
    bias: bool
    input_shape: tuple[int, ...]
    dtype: str
    device: str

    def describe(self) -> str:
        """A short description for messages."""
        k, s = "x".join(map(str, self.kernel_size)), "x".join(map(str, self.stride))
        return (
            f"Conv2d({self.in_channels}, {self.out_channels}, kernel {k}, stride {s}, groups {self.groups}) on "
            f"{'x'.join(map(str, self.input_shape))} in {self.dtype} on {self.device}"
        )


class ConvCheck(NamedTuple):
    r"""The verdict on one configuration.

    Args:
        ok: Whether channels-last may be used.
        error: Largest relative difference of channels-last (output, input gradient, weight
            gradient, bias gradient) from the contiguous layout, or, where they disagree, from
            the float64 reference.
        reference_error: The contiguous layout's error against the float64 reference (0.0 when
            no reference was needed).
        reason: Why the check could not run (the probe process died), else ``None``.
        config: The configuration that failed (for the machine canary), else ``None``.
    """

    ok: bool
    error: float
    reference_error: float
    reason: str | None = None
    config: str | None = None


# Relative error (to the largest reference magnitude) below which a channels-last result is
# accepted whatever the contiguous one did: well above float32/bf16 summation differences, well
# below the errors of a wrong kernel (0.06-1.45 measured).
_FLOOR = {"float32": 1e-4, "bfloat16": 2e-2}
_CHECK_BATCH = 16
_TIMEOUT = 120.0  # seconds without an answer from the probe: a hung kernel (seen in oneDNN's AVX2 backward)
_cache: dict[ConvConfig, ConvCheck] = {}
_machine: list[ConvCheck] = []  # the canary's verdict, once known
_lock = threading.RLock()


def check_conv(config: ConvConfig) -> ConvCheck:
    r"""Whether channels-last computes ``config``'s forward and backward as well as the contiguous
    layout (cached per process).

    Both layouts run on the same random input, weights and output gradient, in ``config.dtype``
    (bf16 under autocast). Where they agree to a relative ``1e-4`` (float32; ``2e-2`` bf16: the
    usual case) channels-last is accepted; otherwise each is compared with the float64
    contiguous result, and channels-last is accepted if its error is at most 4 times the
    contiguous one's or below that floor.

    Args:
        config: The convolution.

    Returns:
        A :class:`ConvCheck`.
    """
    with _lock:
        verdict = _cache.get(config)
        if verdict is not None:
            return verdict
        machine_ok(config.device)  # reads the canary's answer if start_probe() asked for it
        verdict = _probe().ask({"config": list(config)})
        _cache[config] = verdict
    if not verdict.ok:
        logger.warning(
            "numerics guard: channels-last %s computes wrong results on this machine (relative error %.2g, "
            "contiguous %.2g)%s; networks with it train in the contiguous layout",
            config.describe(), verdict.error, verdict.reference_error,
            f" ({verdict.reason})" if verdict.reason else "",
        )
    return verdict


def start_probe() -> None:
    r"""Start the probe process and its machine canary in the background now (importing torch and
    the canary take a few seconds), so that the first :func:`channels_last_ok` does not wait for
    them. Idempotent."""
    with _lock:
        if not _machine:
            _probe().send({"canary": True})


def clear_cache() -> None:
    r"""Forget the verdicts of this process (for tests and benchmarks)."""
    with _lock:
        _cache.clear()
        _machine.clear()


def conv_configs(model: nn.Module, example: Tensor, batch_sizes: Iterable[int], dtype: str = "float32") -> set[ConvConfig]:
    r"""The distinct convolution configurations ``model`` runs on inputs like ``example``.

    One forward (no gradient, eval mode, contiguous) of one image of ``example`` records each
    ``nn.Conv2d``'s input shape; each is then taken at every batch size.

    Args:
        model: The network.
        example: A `b x C x H x W` input (only its first image is used).
        batch_sizes: The batch sizes it will be trained on.
        dtype: ``"float32"`` or ``"bfloat16"``.

    Returns:
        A set of :class:`ConvConfig`.
    """
    shapes: list[tuple[nn.Conv2d, tuple[int, ...]]] = []

    def record(module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        shapes.append((module, tuple(inputs[0].shape[1:])))

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if type(m) is nn.Conv2d]
    was_training = model.training
    try:
        if hooks:
            model.eval()
            with torch.no_grad():
                model(example[:1].contiguous())
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    device = example.device.type
    return {
        ConvConfig(m.in_channels, m.out_channels, tuple(m.kernel_size), tuple(m.stride),
                   m.padding if isinstance(m.padding, str) else tuple(m.padding), tuple(m.dilation), m.groups,
                   m.bias is not None, (n, *shape), dtype, device)
        for m, shape in shapes
        for n in batch_sizes
    }


def channels_last_ok(model: nn.Module, example: Tensor, batch_sizes: Iterable[int], bf16: bool = False) -> bool:
    r"""Whether every convolution of ``model`` computes correctly channels-last here
    (:func:`check_conv` of each of :func:`conv_configs`).

    Args:
        model: The network.
        example: An input like the training batches.
        batch_sizes: The batch sizes it will be trained on.
        bf16: Whether it trains under bf16 autocast.

    Returns:
        ``True`` if channels-last may be used for it.
    """
    if not machine_ok(example.device.type):
        return False
    configs = conv_configs(model, example, batch_sizes, "bfloat16" if bf16 else "float32")
    return all(check_conv(c).ok for c in sorted(configs, key=repr))


def training_memory_format(model: nn.Module, example: Tensor, batch_sizes: Iterable[int], bf16: bool = False,
                           channels_last: bool = True) -> torch.memory_format:
    r"""The memory format to train ``model`` in: channels-last if asked for and
    :func:`channels_last_ok`, else contiguous (also for a network whose forward fails: it then
    fails in training, with its reason).

    Args:
        model: The network.
        example: An input like the training batches.
        batch_sizes: The batch sizes it will be trained on.
        bf16: Whether it trains under bf16 autocast.
        channels_last: Whether channels-last is wanted at all.

    Returns:
        ``torch.channels_last`` or ``torch.contiguous_format``.
    """
    if not channels_last:
        return torch.contiguous_format
    try:
        ok = channels_last_ok(model, example, batch_sizes, bf16=bf16)
    except Exception:  # noqa: BLE001 - a network that cannot run fails in training, with its reason
        ok = False
    return torch.channels_last if ok else torch.contiguous_format


def machine_ok(device: str = "cpu") -> bool:
    r"""Whether channels-last convolutions pass the canary on ``device`` (once per process).

    The canary: channels-last ``Conv2d`` forward and backward with a 1x1 kernel and stride 2,
    2-7 input channels, 8x8 and 16x16 inputs, batch 64, each run twice against the contiguous
    layout (the configurations oneDNN's AVX2 path computes wrongly). A CUDA device passes without
    a canary (the per-convolution checks still run).

    Args:
        device: The device type.

    Returns:
        ``False`` if any canary convolution was wrong or killed the probe process.
    """
    if device != "cpu":
        return True
    with _lock:
        if _machine:
            return _machine[0].ok
        verdict = _probe().ask({"canary": True})
        _machine.append(verdict)
    if not verdict.ok:
        logger.warning(
            "numerics guard: channels-last convolutions compute wrong gradients on this machine (%s: relative error "
            "%.2g%s); every network trains in the contiguous layout", verdict.config or "the canary", verdict.error,
            f", {verdict.reason}" if verdict.reason else "",
        )
    return verdict.ok


def _canary() -> ConvCheck:
    for repeat in range(2):
        for size in (8, 16):
            for channels in range(2, 8):
                c = ConvConfig(channels, 2 * channels, (1, 1), (2, 2), (0, 0), (1, 1), 1, False,
                               (64, channels, size, size), "float32", "cpu")
                verdict = _run_check(c, seed=repeat)
                if not verdict.ok:
                    return verdict._replace(config=c.describe())
    return ConvCheck(True, 0.0, 0.0)


def _run_check(c: ConvConfig, seed: int = 0) -> ConvCheck:
    generator = torch.Generator().manual_seed(seed)
    conv = nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding, c.dilation, c.groups,
                     c.bias)
    # At most 16 images: the wrong kernels show at any batch size (at 2, 16, 64 and 128 alike), and
    # a check of a batch of 128 costs as much as 8 training steps of the layer.
    x = torch.randn((min(c.input_shape[0], _CHECK_BATCH), *c.input_shape[1:]), generator=generator)
    weight = torch.randn(conv.weight.shape, generator=generator) / (conv.weight[0].numel() ** 0.5)
    bias = torch.randn(c.out_channels, generator=generator) if c.bias else None
    with torch.no_grad():
        out_shape = nn.functional.conv2d(x[:1], weight, bias, c.stride, c.padding, c.dilation, c.groups).shape[1:]
    grad = torch.randn((x.shape[0], *out_shape), generator=generator)
    device, bf16 = torch.device(c.device), c.dtype == "bfloat16"
    contiguous = _conv_pass(x, weight, bias, grad, c, torch.float32, torch.contiguous_format, device, bf16)
    channels_last = _conv_pass(x, weight, bias, grad, c, torch.float32, torch.channels_last, device, bf16)
    difference = _error(channels_last, contiguous)
    if difference <= _FLOOR[c.dtype]:  # the usual case: the layouts agree, no reference needed
        return ConvCheck(True, difference, 0.0)
    # They disagree: which one is right? The float64 contiguous result (a different kernel) decides.
    reference = _conv_pass(x, weight, bias, grad, c, torch.float64, torch.contiguous_format, "cpu", False)
    error, reference_error = _error(channels_last, reference), _error(contiguous, reference)
    ok = error <= max(4 * reference_error, _FLOOR[c.dtype])
    return ConvCheck(ok, error, reference_error)


def _conv_pass(x: Tensor, weight: Tensor, bias: Tensor | None, grad: Tensor, c: ConvConfig, dtype: torch.dtype,
               memory_format: torch.memory_format, device: str | torch.device, bf16: bool) -> list[Tensor]:
    """Output and gradients (input, weight, bias) of one layout, on the CPU in float64."""
    x = x.to(device, dtype, copy=True).contiguous(memory_format=memory_format).requires_grad_()
    w = weight.to(device, dtype, copy=True).contiguous(memory_format=memory_format).requires_grad_()
    b = bias.to(device, dtype, copy=True).requires_grad_() if bias is not None else None
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
        out = nn.functional.conv2d(x, w, b, c.stride, c.padding, c.dilation, c.groups)
    out.backward(grad.to(device, out.dtype).contiguous(memory_format=memory_format))
    results = [out, x.grad, w.grad] + ([b.grad] if b is not None else [])
    return [t.detach().to("cpu", torch.float64) for t in results]


def _error(values: list[Tensor], reference: list[Tensor]) -> float:
    worst = 0.0
    for value, ref in zip(values, reference):
        if not torch.isfinite(value).all():
            return float("inf")
        scale = ref.abs().max().clamp_min(1e-30)
        worst = max(worst, float((value - ref).abs().max() / scale))
    return worst


class _Probe:
    """The probe process: JSON lines in (a :class:`ConvConfig` each), verdicts out."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.stderr = None
        self.pending: dict | None = None

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self.pending = None
        self.stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "botorch_archsearch.evaluation._numerics_probe"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.stderr, text=True, bufsize=1,
        )

    def send(self, request: dict) -> None:
        """Send a request whose answer :meth:`ask` reads later (one at a time)."""
        if self.pending == request:
            return
        self.start()
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except OSError:
            pass  # the probe died: ask() reports it
        self.pending = request

    def ask(self, request: dict) -> ConvCheck:
        self.send(request)
        self.pending = None
        try:
            ready, _, _ = select.select([self.process.stdout], [], [], _TIMEOUT)
            line = self.process.stdout.readline() if ready else None
        except (OSError, ValueError):
            line = ""
        if line:
            return ConvCheck(*json.loads(line))
        if line is None:  # no answer: a kernel that hangs is no better than a wrong one
            self.process.kill()
            self.process.wait()
            self.process = None
            return ConvCheck(False, float("inf"), 0.0, f"the check did not finish in {_TIMEOUT:.0f} s")
        code = self.process.wait()
        self.stderr.seek(0)
        said = [t for t in self.stderr.read().decode(errors="replace").splitlines() if t.strip()]
        self.process = None
        cause = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        detail = f": {said[-1].strip()}" if said else ""
        return ConvCheck(False, float("inf"), 0.0, f"the check killed its probe process ({cause}{detail})")

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None


_probe_instance: _Probe | None = None


def _probe() -> _Probe:
    global _probe_instance
    if _probe_instance is None:
        _probe_instance = _Probe()
        atexit.register(_probe_instance.close)
    return _probe_instance


def _serve() -> None:
    """The probe process's loop: one verdict per configuration read from stdin."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    for line in sys.stdin:
        request = json.loads(line)
        if "canary" in request:
            verdict = _canary()
        else:
            verdict = _run_check(ConvConfig(*[tuple(v) if isinstance(v, list) else v for v in request["config"]]))
        sys.stdout.write(json.dumps(list(verdict)) + "\n")
        sys.stdout.flush()


__all__ = [
    "ConvCheck",
    "ConvConfig",
    "channels_last_ok",
    "check_conv",
    "clear_cache",
    "conv_configs",
    "machine_ok",
    "start_probe",
    "training_memory_format",
]
