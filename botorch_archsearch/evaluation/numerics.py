r"""The numerics guard: students train channels-last only where that computes correctly here.

Channels-last convolutions are faster on CPUs and GPUs, but their kernels differ by machine:
oneDNN's AVX2 code path (CPUs without AVX-512, or any x86 CPU under
``ONEDNN_MAX_CPU_ISA=AVX2``) returns wrong weight gradients for channels-last ``Conv2d`` with a
1x1 kernel, stride 2 and 2-7 input channels (the downsampling shortcut of a shrunk ResNet),
while the contiguous layout is right. The wrong results vary from run to run (one check of a
configuration can pass by chance), and the same kernels corrupt memory, so the guard works at
two levels:

- families: each convolution family of the zoo's CNNs (kernel 1x1 or 3x3, stride 1 or 2, dense,
  depthwise or grouped) is checked once per process by a canary that sweeps the small channel
  counts where special-case kernels live (1-64 channels, two input sizes), in the background
  (:func:`start_probe`); a network whose convolutions all belong to families that passed trains
  channels-last without further checks, and one with a convolution of a failed family trains in
  the contiguous layout (one warning names the family);
- each other convolution (another kernel, padding, dilation): checked once per distinct
  configuration (channels, kernel, stride, padding, groups, input size, batch size, dtype) before
  the network trains.

A check runs a convolution forward and backward in both layouts on random data (at most 16
images: the wrong kernels show at any batch size); where the layouts disagree, a float64
contiguous result decides which is wrong, and channels-last fails if it is clearly worse.

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
        config: The configuration that failed a family's canary, else ``None``.
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
CANARY_FAMILIES = tuple(
    (kernel, stride, padding, (1, 1), kind)
    for kernel, padding in (((1, 1), (0, 0)), ((3, 3), (1, 1)))
    for stride in ((1, 1), (2, 2))
    for kind in ("dense", "depthwise", "grouped")
)
"""The convolution families the canary covers (:func:`conv_family`): those of ResNet, VGG,
MobileNetV2 and ShuffleNet students."""
_CANARY_CHANNELS = ((1, 4), (2, 4), (3, 8), (4, 2), (5, 10), (6, 12), (7, 3), (8, 16), (12, 24), (16, 8),
                    (24, 48), (32, 64))
_CHECK_BATCH = 16
_TIMEOUT = 120.0  # seconds without an answer from the probe: a hung kernel (seen in oneDNN's AVX2 backward)
_cache: dict[ConvConfig, ConvCheck] = {}
_families: dict[tuple, ConvCheck] = {}  # the canary's verdicts
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
    r"""Start the probe process and the canary of every family in the background now (importing
    torch and the canary take a few seconds), so that the first :func:`channels_last_ok` does not
    wait for them. Idempotent."""
    with _lock:
        for family in CANARY_FAMILIES:
            if (family, "float32") not in _families:
                _probe().send({"family": _jsonable(family), "dtype": "float32"})


def clear_cache() -> None:
    r"""Forget the verdicts of this process (for tests and benchmarks)."""
    with _lock:
        _cache.clear()
        _families.clear()


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
    r"""Whether every convolution of ``model`` computes correctly channels-last here: its family
    passed the canary (:func:`family_ok`), or, outside the canary's families, its configuration
    passed :func:`check_conv`.

    Args:
        model: The network.
        example: An input like the training batches.
        batch_sizes: The batch sizes it will be trained on.
        bf16: Whether it trains under bf16 autocast.

    Returns:
        ``True`` if channels-last may be used for it.
    """
    dtype, device = "bfloat16" if bf16 else "float32", example.device.type
    others = False
    for family in sorted({conv_family(m) for m in model.modules() if type(m) is nn.Conv2d}, key=repr):
        if family in CANARY_FAMILIES:
            if not family_ok(family, dtype, device):
                return False
        else:
            others = True
    if not others:
        return True
    configs = conv_configs(model, example, batch_sizes, dtype)
    return all(check_conv(c).ok for c in sorted(configs, key=repr) if conv_family(c) not in CANARY_FAMILIES)


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


def conv_family(conv: nn.Conv2d | ConvConfig) -> tuple:
    r"""The family of a convolution: ``(kernel, stride, padding, dilation, kind)`` with kind
    ``"dense"`` (one group), ``"depthwise"`` (a group per channel) or ``"grouped"``."""
    groups = conv.groups
    kind = ("dense" if groups == 1 else
            "depthwise" if groups == conv.in_channels == conv.out_channels else "grouped")
    padding = conv.padding if isinstance(conv.padding, str) else tuple(conv.padding)
    return tuple(conv.kernel_size), tuple(conv.stride), padding, tuple(conv.dilation), kind


def family_ok(family: tuple, dtype: str = "float32", device: str = "cpu") -> bool:
    r"""Whether channels-last convolutions of ``family`` pass the canary here (once per process).

    The canary runs the family's convolution at 12 channel pairs from (1, 4) to (32, 64) (equal
    in and out for depthwise; 2 groups for grouped) on 8x8 and 16x16 inputs, each checked like
    :func:`check_conv`; it stops at the first failure. On CUDA the canary is not run (families
    pass; no CUDA kernel is known to be wrong).

    Args:
        family: One of :data:`CANARY_FAMILIES`.
        dtype: ``"float32"`` or ``"bfloat16"``.
        device: The device type.

    Returns:
        ``False`` if the canary found a wrong result, or its check crashed or hung the probe.
    """
    if device != "cpu":
        return True
    key = (family, dtype)
    with _lock:
        verdict = _families.get(key)
        if verdict is None:
            verdict = _probe().ask({"family": _jsonable(family), "dtype": dtype})
            _families[key] = verdict
            if not verdict.ok:
                logger.warning(
                    "numerics guard: channels-last %s convolutions compute wrong results on this machine (%s: "
                    "relative error %.2g%s); networks with them train in the contiguous layout",
                    _describe_family(family), verdict.config or "the canary", verdict.error,
                    f", {verdict.reason}" if verdict.reason else "",
                )
    return verdict.ok


def machine_ok(device: str = "cpu", dtype: str = "float32") -> bool:
    r"""Whether every family of :data:`CANARY_FAMILIES` passes the canary here (:func:`family_ok`)."""
    return all([family_ok(f, dtype, device) for f in CANARY_FAMILIES])


def _canary(family: tuple, dtype: str) -> ConvCheck:
    kernel, stride, padding, dilation, kind = family
    for size in (8, 16):
        for c_in, c_out in _CANARY_CHANNELS:
            groups = {"dense": 1, "depthwise": c_in, "grouped": 2}[kind]
            if kind == "depthwise":
                c_out = c_in
            elif kind == "grouped":
                c_in, c_out = 2 * c_in, 2 * c_out
            c = ConvConfig(c_in, c_out, kernel, stride, padding, dilation, groups, False, (64, c_in, size, size),
                           dtype, "cpu")
            verdict = _run_check(c)
            if not verdict.ok:
                return verdict._replace(config=c.describe())
    return ConvCheck(True, 0.0, 0.0)


def _describe_family(family: tuple) -> str:
    kernel, stride, _, _, kind = family
    return f"{kind} {'x'.join(map(str, kernel))} stride-{stride[0]}"


def _jsonable(value):
    return [_jsonable(v) for v in value] if isinstance(value, (tuple, list)) else value


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


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
    """The probe process: JSON lines in (a request each), verdicts out, in order."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.stderr = None
        self.pending: list[str] = []  # requests sent, not yet answered
        self.answers: dict[str, ConvCheck] = {}

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self.pending = []
        self.stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "botorch_archsearch.evaluation._numerics_probe"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.stderr, text=True, bufsize=1,
        )

    def send(self, request: dict) -> None:
        """Send a request whose answer :meth:`ask` reads later."""
        line = json.dumps(request)
        if line in self.pending or line in self.answers:
            return
        self.start()
        try:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
        except OSError:
            pass  # the probe died: reading its answer reports it
        self.pending.append(line)

    def ask(self, request: dict) -> ConvCheck:
        line = json.dumps(request)
        self.send(request)
        while line not in self.answers:
            self.answers[self.pending[0]] = self._read()
            self.pending.pop(0)
            if self.process is None:  # it died answering: what it had not answered is asked again
                waiting, self.pending = self.pending, []
                for other in waiting:
                    if other == line or other not in self.answers:
                        self.send(json.loads(other))
        return self.answers.pop(line)

    def _read(self) -> ConvCheck:
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


def serve_probe() -> None:
    """The probe process's loop: one verdict per configuration read from stdin."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    for line in sys.stdin:
        request = json.loads(line)
        if "family" in request:
            verdict = _canary(_tuples(request["family"]), request["dtype"])
        else:
            verdict = _run_check(ConvConfig(*[tuple(v) if isinstance(v, list) else v for v in request["config"]]))
        sys.stdout.write(json.dumps(list(verdict)) + "\n")
        sys.stdout.flush()


__all__ = [
    "CANARY_FAMILIES",
    "ConvCheck",
    "ConvConfig",
    "channels_last_ok",
    "check_conv",
    "clear_cache",
    "conv_configs",
    "conv_family",
    "family_ok",
    "machine_ok",
    "start_probe",
    "training_memory_format",
]
