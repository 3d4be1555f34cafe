r"""Sharing a CPU's threads between concurrent workers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def intra_op_threads(num_threads: int) -> Iterator[None]:
    r"""Run with ``torch.set_num_threads(num_threads)`` (process-wide), restored on exit.

    Small operations (an LSTM step over a few sequences, a convolution of a tiny student) run
    nearly as fast on one thread as on two; several of them in parallel threads, one intra-op
    thread each, use a CPU better than one at a time on all threads.

    Args:
        num_threads: Intra-op threads while inside.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


__all__ = ["intra_op_threads"]
