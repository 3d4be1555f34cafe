r"""Evaluate the students of a run directory again, with fresh evaluation seeds.

A search keeps the student with the highest of many noisy evaluations, so its recorded f(x) is an
optimistic figure; a one-shot student is evaluated once. Evaluating every compared student again
with the same fresh seeds (the same data order and initialisation for all of them) compares them
without that bias. :class:`RunEvaluator` rebuilds a run's teacher, dataset, search space and
evaluator from its ``config.json``, and evaluates any edits of that teacher.

Example:
    >>> with RunEvaluator("outputs/run") as run:
    ...     best = max(run.records(), key=lambda r: r["reward"])
    ...     edits = [Edit.from_dict(best["edit"]), oneshot_edit(run.space, "magnitude", 0.2)]
    ...     results = [run.evaluate(edits, seed) for seed in range(3)]
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from botorch_archsearch.evaluation import load_dataset, reward
from botorch_archsearch.evaluation.latency import graph_latency
from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph import build_student, count_flops, count_params, trace
from botorch_archsearch.search.config import (
    CompressConfig,
    check_config,
    read_saved_config,
    upgrade_saved_config,
)
from botorch_archsearch.search.constraints import parse_constraints, search_feasibility
from botorch_archsearch.search.journal import JOURNAL_NAME, RECORD_KEYS, read_journal
from botorch_archsearch.search.loop import derive_seed, make_backend, resolve_teacher, space_options
from botorch_archsearch.search.store import TEACHER_NAME, RunStore
from botorch_archsearch.space import Edit, SearchSpace, channel_importance


class RunEvaluator:
    r"""A finished (or interrupted) run's teacher, data, search space and evaluator.

    Args:
        run_dir: The run directory (with ``config.json`` and ``teacher.json``).
        overrides: Nested settings that replace the run's for the evaluation (e.g.
            ``{"evaluation": {"isolation": "none"}}``); the teacher and dataset stay the run's.
    """

    def __init__(self, run_dir: str | Path, overrides: dict[str, Any] | None = None) -> None:
        self.run_dir = Path(run_dir)
        values = upgrade_saved_config(read_saved_config(self.run_dir))
        for section, entries in (overrides or {}).items():
            values.setdefault(section, {}).update(entries)
        self.config = config = CompressConfig.from_dict(values)
        check_config(config)
        device = torch.device(config.evaluation.device)
        d = config.dataset
        self.data = load_dataset(d.name, d.root, download=d.download, val_size=d.val_size, seed=d.split_seed,
                                 image_size=d.image_size).to(device)
        self.teacher = resolve_teacher(None, self.data, config, device)
        example = torch.zeros(1, self.data.in_channels, self.data.image_size, self.data.image_size, device=device)
        graph = trace(self.teacher.model, example)
        self.teacher_info = {"params": count_params(graph), "flops": count_flops(graph)}
        path = self.run_dir / TEACHER_NAME
        if path.exists():
            started = json.loads(path.read_text())
            differ = [k for k in ("params", "flops") if k in started and started[k] != self.teacher_info[k]]
            if differ:
                raise ArchSearchError(
                    f"RunEvaluator: the teacher rebuilt from {str(self.run_dir)!r}'s config differs from its "
                    f"{TEACHER_NAME} in {differ}; its cached or checkpointed teacher is no longer the run's."
                )
        self.space = SearchSpace(graph, channel_importance=channel_importance(graph, self.teacher.model),
                                 **space_options(config))
        self.backend = make_backend(config, self.teacher, self.data)

    def records(self) -> list[dict[str, Any]]:
        """The run's journal records."""
        return read_journal(self.run_dir / JOURNAL_NAME, required=RECORD_KEYS).records

    def evaluate(self, edits: Sequence[Edit], seed: int, source: str | None = None) -> list[dict[str, Any]]:
        r"""Distil the students of ``edits`` together with evaluation seed ``seed`` (hashed with
        the run's seed, so it differs from every evaluation seed of the search).

        Args:
            edits: Edits of the run's teacher.
            seed: The evaluation seed.
            source: The run's weight source the students inherit from (a journal record's
                ``source``: the regularised teacher of a field method); ``None``: the teacher.

        Returns:
            Per edit: ``accuracy``, ``reward`` (as the search computes it), ``params``, ``flops``,
            ``status`` and ``reason``.

        Raises:
            ArchSearchError: If the run has no such weight source.
        """
        if source is None:
            students = [self.space.student(edit) for edit in edits]
            nets: list[Any] = students
        else:
            weights = RunStore(self.run_dir, resume=True).source(source)  # reads the file, takes no lock
            if weights is None:
                raise ArchSearchError(f"RunEvaluator: {str(self.run_dir)!r} has no weight source {source!r}.")
            model = copy.deepcopy(self.teacher.model).cpu()
            model.load_state_dict(weights.state_dict)
            space = self.space.with_importance(weights.importance)
            students = [space.student(edit) for edit in edits]
            nets = [build_student(student, model) for student in students]
        results = self.backend.evaluate(nets, derive_seed(self.config.seed, "reevaluate", int(seed)))
        r, out = self.config.reward, []
        feasible = search_feasibility(
            parse_constraints(self.config.search.constraints), self.teacher_info, device=self.config.evaluation.device,
            teacher_latency=lambda: graph_latency(self.space.graph, device=self.config.evaluation.device,
                                                  min_run_time=0.2))
        for student, result in zip(students, results):
            params, flops = count_params(student.graph), count_flops(student.graph)
            f = reward(result.accuracy if result.ok else 0.0, self.teacher.val_accuracy, params,
                       self.teacher_info["params"], flops=flops, teacher_flops=self.teacher_info["flops"],
                       measure=r.measure, budget=r.budget, budget_measure=r.budget_measure, failed=not result.ok,
                       kind=r.kind)
            if feasible is not None and not feasible(student.graph):
                f = 0.0  # as the search scores it: search.constraints broken
            out.append({"accuracy": result.accuracy, "reward": f, "params": params, "flops": flops,
                        "status": result.status, "reason": result.reason})
        return out

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> RunEvaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["RunEvaluator"]
