r"""Test-only layers that kill the process training them (imported by the worker process, which
unpickles the students it is sent)."""

from __future__ import annotations

import os

from torch import nn


def abort_on_train(student: nn.Module) -> nn.Module:
    """Make ``student``'s first training forward abort the process (as a crash in native code
    would); evaluation-mode forwards (the numerics guard's probe, validation) run as before. The
    hook travels with the module when it is pickled, and its weights' names do not change."""
    student.register_forward_pre_hook(_abort)
    return student


def _abort(module: nn.Module, inputs) -> None:
    if module.training:
        os.abort()
