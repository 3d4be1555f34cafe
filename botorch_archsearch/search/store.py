r"""The run store: everything a search keeps, in its run directory or, without one, in memory.

A :class:`RunStore` owns the run directory's lock, its config and identity (``config.json``,
``run.json``), the teacher it was started with (``teacher.json``), the journal of evaluations
(``journal.jsonl``) and of final trainings (``final.jsonl``), the kept weights of the best
students (``weights/``) and the kernels of every step (``kernels/``). The search itself decides
*what* to keep; the store decides where and how, so that nothing computed is lost: every record is
flushed to disk before the next is computed, and weights are written before their record.

Example:
    >>> with RunStore(run_dir, resume=False) as store:
    ...     store.start(config)
    ...     store.append(record)
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.kernels import load_kernel, save_kernel
from botorch_archsearch.search.config import (
    CONFIG_NAME,
    RESUMABLE_KEYS,
    config_differences,
    read_saved_config,
    upgrade_saved_config,
    without_resumable,
)
from botorch_archsearch.search.journal import JOURNAL_NAME, RECORD_KEYS, Journal, read_journal, repair_journal
from botorch_archsearch.search.lock import RunDirectoryLock
from botorch_archsearch.search.records import EvaluationRecord, FinalRecord
from botorch_archsearch.search.report import TENSORBOARD_DIR, TensorBoardLogger
from botorch_archsearch.utils.files import make_dir, write_text_atomic

if TYPE_CHECKING:
    from botorch_archsearch.search.config import CompressConfig

logger = logging.getLogger("botorch_archsearch")

FINAL_NAME = "final.jsonl"
RUN_NAME = "run.json"
TEACHER_NAME = "teacher.json"
WEIGHTS_DIR = "weights"
KERNELS_DIR = "kernels"
SOURCES_DIR = "sources"


@dataclass(frozen=True, eq=False)
class WeightSource:
    r"""Weights a method's students inherit instead of the teacher's: a trained copy of the
    teacher (same architecture), with the channel importance the method ranks channels by.

    Args:
        name: Its name in the run (``sources/<name>.pt``; a journal record's ``source``).
        state_dict: The teacher-architecture weights.
        importance: Per channel group (the order of an edit's ``shrink_ratios``), the method's
            importance of each channel.
        info: What made it: the method, its settings, ``cost`` (MAC-images) and ``seconds``.
    """

    name: str
    state_dict: dict[str, torch.Tensor]
    importance: tuple[np.ndarray, ...]
    info: dict[str, Any] = field(default_factory=dict)


class RunStore:
    r"""What a search keeps: in ``run_dir``, or in memory if it is ``None``.

    Use it as a context manager: entering takes the run directory's lock (one process per run
    directory), leaving closes the journal and releases the lock.
    """

    def __init__(self, run_dir: str | Path | None, resume: bool = False) -> None:
        r"""A store for a new run (``resume=False``: the directory is created) or for the run to
        resume in ``run_dir``.

        Raises:
            ArchSearchError: If ``resume`` and ``run_dir`` is not a run directory.
        """
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.resume = resume
        self._lock: RunDirectoryLock | None = None
        self._journal: Journal | None = None
        self._tensorboard: TensorBoardLogger | None = None
        self._weights: dict[int, dict] = {}  # in memory, without a run directory
        self._sources: dict[str, WeightSource] = {}  # read or saved in this run
        self._kernels: dict[tuple[str, int], list[dict]] = {}  # in memory, without a run directory
        if self.run_dir is None:
            if resume:
                raise ArchSearchError("compress: resume=True needs the run_dir to resume.")
            return
        if resume:
            if not (self.run_dir / CONFIG_NAME).exists():
                raise ArchSearchError(f"resume: {str(self.run_dir)!r} is not a run directory (no {CONFIG_NAME}).")
        else:
            make_dir(self.run_dir, "run directory")

    def __enter__(self) -> RunStore:
        if self.run_dir is not None:
            self._lock = RunDirectoryLock(self.run_dir)
            self._lock.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        r"""Close the journal and the TensorBoard log, and release the lock."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None
        if self._lock is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None

    # ------------------------------------------------------------------ identity
    def start(self, config: CompressConfig) -> None:
        r"""A new run: write its config and identity. A resumed one: check the config against the
        identity it was started with, then save the config it continues with (the resumable keys may
        have changed, e.g. ``search.steps`` to extend it).

        Raises:
            ArchSearchError: If the config differs from the run's in a key that may not change on
                resume, or a new run's directory already holds a journal.
        """
        if self.run_dir is None:
            return
        run_dir, values = self.run_dir, json.loads(json.dumps(config.to_dict()))
        if self.resume:
            if (run_dir / RUN_NAME).exists():
                started, source = _read_json(run_dir / RUN_NAME).get("identity"), RUN_NAME
            else:  # a run directory written before run.json: its config.json is all it has
                started, source = read_saved_config(run_dir), CONFIG_NAME
            if not isinstance(started, dict):
                raise ArchSearchError(f"resume: {str(run_dir / source)!r} holds no run identity; it was not written "
                                      "by a search.")
            started = without_resumable(upgrade_saved_config(started))
            differences = config_differences(started, without_resumable(values))
            if differences:
                raise ArchSearchError(
                    f"resume: the config differs from the one {str(run_dir)!r} was started with ({source}) in "
                    f"{'; '.join(differences)}. Only {', '.join(RESUMABLE_KEYS)} may change on resume. Resume with "
                    f"the run's settings (the Hydra app: resume=<run dir> with no other overrides; in Python: "
                    f"CompressConfig.from_dict(upgrade_saved_config(json.loads(<{CONFIG_NAME}>.read_text()))) if "
                    f"{CONFIG_NAME} was not edited)."
                )
            if not (run_dir / RUN_NAME).exists():
                _write_json(run_dir / RUN_NAME, {"identity": started})
            _write_json(run_dir / CONFIG_NAME, values)
            return
        if (run_dir / JOURNAL_NAME).exists() and read_journal(run_dir / JOURNAL_NAME).records:
            raise ArchSearchError(
                f"{str(run_dir)!r} already holds a search journal; resume it (resume=True) or use another directory."
            )
        _write_json(run_dir / CONFIG_NAME, values)
        _write_json(run_dir / RUN_NAME, {"identity": without_resumable(values)})

    def check_teacher(self, teacher: dict[str, Any]) -> None:
        r"""Write ``teacher.json``; on resume, first check that the teacher is the run's.

        Raises:
            ArchSearchError: If the run was started with another teacher.
        """
        if self.run_dir is None:
            return
        path = self.run_dir / TEACHER_NAME
        if self.resume and path.exists():
            started = _read_json(path)
            differ = [f"{key}: started with {started.get(key)!r}, now {teacher[key]!r}"
                      for key in ("name", "params", "flops") if key in started and started[key] != teacher[key]]
            if differ:
                raise ArchSearchError(
                    f"resume: the teacher differs from the one {str(self.run_dir)!r} was started with "
                    f"({TEACHER_NAME}): {'; '.join(differ)}. Resume with the run's teacher."
                )
        write_text_atomic(path, json.dumps(teacher, indent=2))

    # ------------------------------------------------------------------ journal
    def open_journal(self) -> list[EvaluationRecord]:
        r"""Open the journal for appending and return its records (a cut-off last line is moved
        aside and reported)."""
        if self.run_dir is None:
            return []
        contents = repair_journal(self.run_dir / JOURNAL_NAME, required=RECORD_KEYS)
        if contents.problem:
            logger.warning("%s", contents.problem)
        records = [EvaluationRecord.from_dict(r) for r in contents.records]
        self._journal = Journal(self.run_dir / JOURNAL_NAME)
        self._tensorboard = TensorBoardLogger(self.run_dir / TENSORBOARD_DIR)
        return records

    def append(self, record: EvaluationRecord, best_reward: float) -> None:
        r"""Append ``record`` to the journal (flushed to disk) and the TensorBoard log."""
        if self.run_dir is None:
            return
        if self._journal is None:
            raise ArchSearchError("RunStore.append: open the journal first (open_journal).")
        values = record.to_dict()
        self._journal.append(values)
        self._tensorboard.log_record(values, best_reward)

    def final_records(self) -> dict[tuple[str, int], FinalRecord]:
        r"""The final trainings done so far, by method and evaluation index."""
        if self.run_dir is None:
            return {}
        return {(f.method, f.index): f for f in map(FinalRecord.from_dict,
                                                    read_journal(self.run_dir / FINAL_NAME).records)}

    def append_final(self, record: FinalRecord) -> None:
        r"""Append a final training's record to ``final.jsonl`` (flushed to disk)."""
        if self.run_dir is not None:
            with Journal(self.run_dir / FINAL_NAME) as journal:
                journal.append(record.to_dict())

    # ------------------------------------------------------------------ weights and kernels
    def keep_weights(self, index: int, state_dict: dict) -> None:
        r"""Keep the distilled weights of evaluation ``index``."""
        if self.run_dir is None:
            self._weights[index] = state_dict
            return
        path = self.run_dir / WEIGHTS_DIR / f"{index}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state_dict, path)

    def drop_weights(self, index: int) -> None:
        r"""Forget the weights of evaluation ``index`` (if kept)."""
        if self.run_dir is None:
            self._weights.pop(index, None)
        else:
            (self.run_dir / WEIGHTS_DIR / f"{index}.pt").unlink(missing_ok=True)

    def weights(self, index: int) -> dict | None:
        r"""The kept weights of evaluation ``index`` (``None`` if none were kept)."""
        if self.run_dir is None:
            return self._weights.get(index)
        path = self.run_dir / WEIGHTS_DIR / f"{index}.pt"
        return torch.load(path, map_location="cpu", weights_only=True) if path.exists() else None

    def save_source(self, source: WeightSource) -> None:
        r"""Keep a weight source for the run's students (``sources/<name>.pt``, written before
        any record refers to it).

        Raises:
            ArchSearchError: If its name is not a plain name (letters, digits, ``-``, ``_``, ``.``).
        """
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", source.name):
            raise ArchSearchError(f"RunStore.save_source: {source.name!r} is not a plain name (letters, digits, -, _, .).")
        self._sources[source.name] = source
        if self.run_dir is None:
            return
        path = self.run_dir / SOURCES_DIR / f"{source.name}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".pt.partial")
        torch.save({"state_dict": source.state_dict, "info": source.info,
                    "importance": [torch.as_tensor(v, dtype=torch.float64) for v in source.importance]}, partial)
        partial.replace(path)  # a source file is whole or absent

    def source(self, name: str) -> WeightSource | None:
        r"""The weight source ``name`` of this run (``None`` if it was never saved)."""
        if name in self._sources or self.run_dir is None:
            return self._sources.get(name)
        path = self.run_dir / SOURCES_DIR / f"{name}.pt"
        if not path.exists():
            return None
        values = torch.load(path, map_location="cpu", weights_only=True)
        source = WeightSource(name, values["state_dict"], tuple(v.numpy() for v in values["importance"]),
                              values.get("info", {}))
        self._sources[name] = source
        return source

    def save_kernels(self, method: str, step: int, models: list[Any], metadata: list[dict[str, Any]]) -> None:
        r"""Save the fitted kernels of a step as ``kernels/<method>-stepNNN/kernelK.pt``."""
        if self.run_dir is None:
            self._kernels[(method, step)] = [
                {k: v.detach().clone() for k, v in model.covar_module.state_dict().items()} for model in models
            ]
            return
        folder = self.run_dir / KERNELS_DIR / f"{method}-step{step:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i, (model, extra) in enumerate(zip(models, metadata)):
            save_kernel(model.covar_module, folder / f"kernel{i}.pt", noise=float(model.likelihood.noise.item()),
                        metadata=extra)


    def kernel_states(self, method: str, step: int) -> list[dict] | None:
        r"""The state dicts of the kernels that ``method`` saved at ``step`` (kernel order), or
        ``None`` if it saved none then (e.g. a step of random students)."""
        if self.run_dir is None:
            return self._kernels.get((method, step))
        folder = self.run_dir / KERNELS_DIR / f"{method}-step{step:03d}"
        paths = sorted(folder.glob("kernel*.pt"), key=lambda p: int(p.stem[len("kernel"):]))
        return [load_kernel(p).kernel.state_dict() for p in paths] or None


def saved_kernels(run_dir: str | Path) -> list[Path]:
    r"""The kernel files of the last step that saved kernels in ``run_dir``.

    Raises:
        ArchSearchError: If the run directory saved no kernels.
    """
    folder = Path(run_dir) / KERNELS_DIR
    steps = sorted(p for p in folder.glob("*-step*") if p.is_dir()) if folder.is_dir() else []
    paths = sorted(steps[-1].glob("kernel*.pt")) if steps else []
    if not paths:
        raise ArchSearchError(
            f"kernel.transfer_from: no saved kernels under {str(folder)!r}; give the run directory of an ESNAC "
            "search (it saves kernels/<method>-stepNNN/kernelK.pt)."
        )
    return paths


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ArchSearchError(f"{str(path)!r} cannot be read as JSON ({error}); restore it or start a new run.") from None


def _write_json(path: Path, values: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(values, indent=2, sort_keys=True))  # a resuming process may read it now


__all__ = ["FINAL_NAME", "RUN_NAME", "RunStore", "SOURCES_DIR", "TEACHER_NAME", "WeightSource", "saved_kernels"]
