r"""Where bfloat16 autocast pays: devices that compute in bfloat16 natively."""

from __future__ import annotations

import functools

import torch

from botorch_archsearch.utils.validation import check_bool


def native_bf16(device: str | torch.device) -> bool:
    r"""Whether ``device`` computes bfloat16 natively, so that bf16 autocast makes training faster.

    CUDA: ``torch.cuda.is_bf16_supported(including_emulation=False)`` (Ampere and later; older GPUs
    emulate bf16, slower than float32). CPU: Intel AMX (Sapphire Rapids
    and later), where oneDNN runs bf16 convolutions and matrix products on the tile units;
    without AMX, bf16 is emulated or barely faster, and float32 is kept. Other devices: ``False``.

    Args:
        device: The training device.

    Returns:
        ``True`` where the default of :func:`~botorch_archsearch.evaluation.evaluate_students` is
        bf16 autocast.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return _cpu_amx()
    return False


def use_bf16(bf16: bool | None, device: str | torch.device) -> bool:
    r"""Whether to autocast to bfloat16: ``bf16`` if given, else :func:`native_bf16` of ``device``.

    Args:
        bf16: ``True``, ``False``, or ``None`` (automatic).
        device: The training device.

    Raises:
        ArchSearchError: If ``bf16`` is not a bool or ``None``.
    """
    if check_bool("bf16", bf16, optional=True) is None:
        return native_bf16(device)
    return bf16


@functools.cache
def _cpu_amx() -> bool:
    # torch.cpu has no public query for AMX; its private one is used when present, else
    # /proc/cpuinfo (Linux); anything else: no.
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    if probe is not None:
        try:
            return bool(probe())
        except Exception:  # noqa: BLE001 - a probe that fails means "no"
            return False
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " amx_bf16" in line for line in f)
    except OSError:
        return False


__all__ = ["native_bf16", "use_bf16"]
