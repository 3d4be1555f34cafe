r"""The compression search: ESNAC's Algorithm 1 and random search with the same evaluator and
budget (paper section 4.1), then full training of the best students.

ESNAC: ``T`` steps; the first evaluates ``K`` random edits of the teacher (and the second too
while fewer than 2 architectures were evaluated, for ``K = 1``); each later step
trains ``K`` kernels on random halves of the evaluated architectures, each proposes one new
architecture (:func:`~botorch_archsearch.acquisition.propose_architectures`), and the ``K``
students are distilled together (:func:`~botorch_archsearch.evaluation.evaluate_students`).
Random search evaluates ``T * K`` random edits, ``K`` at a time.

Every evaluated architecture is appended to the run's journal as soon as it is known. All the
randomness of a step is drawn from ``(seed, method, step)``, so a search killed at any moment
and resumed (``resume=True``) ends exactly as an uninterrupted one would on a CPU: the journal's
records are reused, and only what is missing is evaluated.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from botorch_archsearch.acquisition import ACQUISITIONS, optimize_acqf_edits, propose_architectures
from botorch_archsearch.acquisition.edits import row_digests
from botorch_archsearch.acquisition.multi_kernel import random_subset
from botorch_archsearch.evaluation import (
    ImageDataset,
    Teacher,
    load_dataset,
    load_teacher,
    reward,
    trained_teacher,
)
from botorch_archsearch.exceptions import ArchSearchError, failure_reason
from botorch_archsearch.gp import transferred_gp
from botorch_archsearch.graph import ArchGraph, build_student, count_flops, count_params, encode, save_student, trace
from botorch_archsearch.kernels import load_kernel, save_kernel
from botorch_archsearch.models import build_teacher
from botorch_archsearch.search.backends import DaskBackend, LocalBackend
from botorch_archsearch.search.config import (
    CONFIG_NAME,
    CompressConfig,
    check_config,
    read_saved_config,
    upgrade_saved_config,
)
from botorch_archsearch.search.journal import JOURNAL_NAME, RECORD_KEYS, Journal, read_journal, repair_journal
from botorch_archsearch.search.lock import RunDirectoryLock
from botorch_archsearch.search.report import TensorBoardLogger, format_seconds, write_report
from botorch_archsearch.space import (
    ONESHOT_METHODS,
    Edit,
    SearchSpace,
    channel_importance,
    mutate_edits,
    oneshot_edit,
    perturb_edits,
)
from botorch_archsearch.utils.files import make_dir
from botorch_archsearch.utils.precision import use_bf16

logger = logging.getLogger("botorch_archsearch")

FINAL_NAME = "final.jsonl"
RUN_NAME = "run.json"
TEACHER_NAME = "teacher.json"


@dataclass
class SearchResult:
    r"""What :func:`compress` found.

    Args:
        records: Every evaluated architecture (the journal's records), in order.
        best: Per method, its record with the highest reward.
        final: The fully trained top students (test accuracy), per method and rank.
        teacher: The teacher's name, size and accuracy.
        run_dir: The run directory (``None`` if the search wrote none).
        seconds: Wall-clock time of this call.
    """

    records: list[dict[str, Any]]
    best: dict[str, dict[str, Any]]
    final: list[dict[str, Any]]
    teacher: dict[str, Any]
    run_dir: Path | None = None
    seconds: float = 0.0
    summary: str = field(default="", repr=False)


def compress(
    teacher: nn.Module | Teacher | None = None,
    data: ImageDataset | None = None,
    config: CompressConfig | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
) -> SearchResult:
    r"""Search for a compressed student of ``teacher`` on ``data``.

    Args:
        teacher: A trained network (its validation accuracy is measured once), a
            :class:`~botorch_archsearch.evaluation.Teacher`, or ``None``: the teacher of
            ``config.teacher`` (a zoo network, a torchvision model or a user's module), trained on the
            dataset (and cached) or loaded from its checkpoint.
        data: The dataset, or ``None``: ``config.dataset`` loaded.
        config: The settings (default :class:`CompressConfig`).
        run_dir: Where to write the run directory (journal, kernels, best students, report,
            TensorBoard); ``None``: nothing is written, except the journal is kept in memory.
        resume: Continue the search in ``run_dir`` from its journal. ``config`` must be the one
            the run was started with (its identity, stored in ``run.json``), except the
            :data:`RESUMABLE_KEYS`; the teacher must be the one in ``teacher.json``.

    Returns:
        A :class:`SearchResult`.

    Raises:
        RunDirectoryLockedError: If another process is searching in ``run_dir`` (one process per
            run directory: ``compress`` holds ``<run_dir>/.lock`` until it returns).
        ArchSearchError: If ``resume`` and the config or the teacher differ from the run's.
    """
    config = CompressConfig() if config is None else config
    check_config(config)
    start = time.perf_counter()
    run_dir = None if run_dir is None else Path(run_dir)
    if resume and run_dir is None:
        raise ArchSearchError("compress: resume=True needs the run_dir to resume.")
    if run_dir is None:
        return _compress(teacher, data, config, None, resume, start)
    _create_run_dir(run_dir, resume)
    with RunDirectoryLock(run_dir):  # held until the report is written
        _prepare_run_dir(run_dir, config, resume)
        return _compress(teacher, data, config, run_dir, resume, start)


def _compress(teacher: nn.Module | Teacher | None, data: ImageDataset | None, config: CompressConfig,
              run_dir: Path | None, resume: bool, start: float) -> SearchResult:
    """The search of :func:`compress`, in its run directory's lock."""
    device = torch.device(config.evaluation.device)
    if data is None:
        d = config.dataset
        data = load_dataset(d.name, d.root, download=d.download, val_size=d.val_size, seed=d.split_seed,
                            image_size=d.image_size)
    data = data.to(device)
    teacher = resolve_teacher(teacher, data, config, device)
    example = torch.zeros(1, data.in_channels, data.image_size, data.image_size, device=device)
    graph = trace(teacher.model, example)
    space = SearchSpace(graph, channel_importance=channel_importance(graph, teacher.model), **space_options(config))
    teacher_info = {
        "name": teacher.name or type(teacher.model).__name__,
        "params": count_params(graph),
        "flops": count_flops(graph),
        "val_accuracy": teacher.val_accuracy,
        "test_accuracy": teacher.test_accuracy,
        "seconds": None,
    }
    logger.info(
        "teacher %s: %s parameters, validation accuracy %.4f; search space: %s",
        teacher_info["name"], f"{teacher_info['params']:,}", teacher.val_accuracy, space,
    )
    if config.evaluation.backend == "local":
        bf16 = use_bf16(config.evaluation.bf16, device)
        logger.info("distillation on %s in %s", device, "bf16 autocast" if bf16 else "float32")
    if run_dir is not None:
        _check_and_write_teacher(run_dir, teacher_info, resume)
    search = _Search(config, space, teacher, teacher_info, data, run_dir)
    try:
        methods = run_methods(config)
        for method in methods:
            search.run(method)
        final = search.train_final(methods)
    finally:
        search.close()
    best = {m: search.best(m) for m in methods if search.best(m) is not None}
    summary = _summary(search.records, best, final, teacher_info)
    for line in summary.splitlines():
        logger.info("%s", line)
    if run_dir is not None:
        write_report(run_dir, search.records, teacher_info, final)
        logger.info("run directory: %s (report.md, journal.jsonl, best/, kernels/, tensorboard/)", run_dir)
    return SearchResult(search.records, best, final, teacher_info, run_dir, time.perf_counter() - start, summary)


class _Search:
    """The state of one search: the evaluated records, the journal, the kept weights."""

    def __init__(self, config: CompressConfig, space: SearchSpace, teacher: Teacher, teacher_info: dict,
                 data: ImageDataset, run_dir: Path | None) -> None:
        self.config, self.space, self.teacher, self.teacher_info = config, space, teacher, teacher_info
        self.data, self.run_dir = data, run_dir
        self.L = space.graph.num_layers
        self.records: list[dict[str, Any]] = []
        self.graphs: list[ArchGraph] = []
        self.journal = None
        self.tensorboard = None
        self._kept: dict[int, dict] = {}
        if run_dir is not None:
            contents = repair_journal(run_dir / JOURNAL_NAME, required=RECORD_KEYS)
            if contents.problem:
                logger.warning("%s", contents.problem)
            for record in contents.records:
                self.records.append(record)
                self.graphs.append(record_graph(space, record))
            if contents.records:
                logger.info("resuming: %d architectures already evaluated in %s", len(contents.records), run_dir)
            self.journal = Journal(run_dir / JOURNAL_NAME)
            self.tensorboard = TensorBoardLogger(run_dir / "tensorboard")
        self.transfer = _transfer_kernels(config.kernel.transfer_from, self.L) if config.kernel.transfer_from else None
        self.backend = make_backend(config, teacher, data)

    def close(self) -> None:
        self.backend.close()
        if self.journal is not None:
            self.journal.close()
        if self.tensorboard is not None:
            self.tensorboard.close()

    # ---------------------------------------------------------------- records
    def of(self, method: str) -> list[int]:
        return [i for i, r in enumerate(self.records) if r["method"] == method]

    def best(self, method: str) -> dict[str, Any] | None:
        ok = [self.records[i] for i in self.of(method) if self.records[i]["status"] == "ok"]
        return max(ok, key=lambda r: r["reward"], default=None)

    def top(self, method: str, k: int) -> list[dict[str, Any]]:
        ok = [self.records[i] for i in self.of(method) if self.records[i]["status"] == "ok"]
        return sorted(ok, key=lambda r: (-r["reward"], r["index"]))[:k]

    # ---------------------------------------------------------------- the loop
    def run(self, method: str) -> None:
        if method in ONESHOT_METHODS:
            self.run_oneshot(method)
            return
        c = self.config.search
        for step in range(1, c.steps + 1):
            done = [self.records[i] for i in self.of(method) if self.records[i]["step"] == step]
            if len(done) >= c.num_kernels:
                continue
            step_start = time.perf_counter()
            generator = _generator(self.config.seed, method, step)
            evaluated = sum(1 for i in self.of(method) if self.records[i]["step"] < step)
            if method == "esnac" and step == 1 and c.init == "oneshot":
                proposals = self._oneshot_init(c.num_kernels, generator, method, step)
            elif method == "random" or step == 1 or evaluated < 2:  # a GP needs 2 points (K = 1: steps 1-2)
                proposals = self._random(c.num_kernels, generator, method, step)
            elif self.transfer is not None:
                proposals = self._propose_transfer(method, step, generator)
            else:
                proposals = self._propose(method, step, generator)
            done_keys = {(r["key"], json.dumps(r["edit"], sort_keys=True)) for r in done}
            todo = [p for p in proposals
                    if (p["graph"].key(), json.dumps(p["edit"].to_dict(), sort_keys=True)) not in done_keys]
            self._evaluate(todo, method, step)
            best = self.best(method)
            n = len(self.of(method))
            logger.info(
                "%s step %d/%d: %d evaluated (%d in all), best f(x) %s, step %s",
                method, step, c.steps, len(todo), n,
                "n/a" if best is None else
                f"{best['reward']:.4f} (accuracy {best['accuracy']:.4f}, "
                f"{self.teacher_info['params'] / max(best['params'], 1):.1f}x fewer parameters)",
                format_seconds(time.perf_counter() - step_start),
            )

    def run_oneshot(self, method: str) -> None:
        """One evaluation per target of a one-shot baseline (a step each)."""
        c, measure = self.config.search, self._size_measure()
        targets = self.targets()
        for step, target in enumerate(targets, 1):
            if any(self.records[i]["step"] == step for i in self.of(method)):
                continue
            edit = oneshot_edit(self.space, method, target, measure=measure, scope=c.magnitude_scope)
            graph = self.space.apply(edit)
            self._evaluate([{"graph": graph, "edit": edit, "kernel": None, "acquisition": None, "target": target}],
                           method, step)
            record = self.records[-1]
            logger.info(
                "%s at %.4g of the teacher's %s: f(x) %.4f (accuracy %s, %.1fx fewer %s)", method, target, measure,
                record["reward"], "n/a" if record["accuracy"] is None else f"{record['accuracy']:.4f}",
                self.teacher_info[measure] / max(record[measure], 1), measure,
            )

    def _size_measure(self) -> str:
        r = self.config.reward
        return r.budget_measure or r.measure

    def targets(self) -> list[float]:
        """The one-shot baselines' targets (relative sizes), see ``search.targets``."""
        c, r, measure = self.config.search, self.config.reward, self._size_measure()
        if c.targets is not None:
            return [float(t) for t in c.targets]
        searched = [self.best(m) for m in ("random", "esnac") if self.of(m)]
        sizes = sorted({b[measure] / self.teacher_info[measure] for b in searched if b is not None}, reverse=True)
        if sizes:
            return sizes
        if r.budget is not None:
            return [min(1.0, r.budget / self.teacher_info[measure])]
        return list(DEFAULT_TARGETS)

    def _oneshot_init(self, k: int, generator: torch.Generator, method: str, step: int) -> list[dict[str, Any]]:
        """ESNAC's first step from one-shot students: ``magnitude`` and ``uniform`` (with the
        search's channel order; where that is ``magnitude`` and the scope ``group``, the two are one
        student, evaluated once) at each of :data:`INIT_TARGETS` in turn, then random students if
        ``k`` is larger."""
        measure, proposals, keys = self._size_measure(), [], set()
        for target in INIT_TARGETS:
            for oneshot in ("magnitude", "uniform"):
                if len(proposals) == k:
                    return proposals
                try:
                    edit = oneshot_edit(self.space, oneshot, target, measure=measure,
                                        scope=self.config.search.magnitude_scope)
                except ArchSearchError:
                    continue  # a target this teacher cannot reach
                if oneshot == "uniform":  # with the search's channel order, as every other student of it
                    edit = replace(edit, channel_order=self.space.channel_order)
                if any(p["edit"] == edit for p in proposals):
                    continue  # e.g. both keep every channel
                graph = self.space.apply(edit)
                keys.add(graph.key())
                proposals.append({"graph": graph, "edit": edit, "kernel": None, "acquisition": None,
                                  "target": target})
        if len(proposals) < k:
            proposals += self._random(k - len(proposals), generator, method, step, avoid=keys)
        return proposals

    def _local_edits(self, method: str, step: int, generator: torch.Generator) -> list[Edit]:
        """Local edits of the method's best students so far, smaller as the search goes on: small
        steps of :data:`LOCAL_SCALES` (``search.local_edits=perturb``) or mutations at the rates of
        :data:`LOCAL_RATES` (``mutate``), from the second step to the last."""
        c, a = self.config.search, self.config.acquisition
        n = int(round(c.local_fraction * a.num_candidates))
        if n == 0:
            return []
        ok = [self.records[i] for i in self.of(method) if self.records[i]["step"] < step and
              self.records[i]["status"] == "ok"]
        parents = [self.graphs[r["index"]].edit for r in sorted(ok, key=lambda r: (-r["reward"], r["index"]))[:LOCAL_PARENTS]]
        if not parents:
            return []
        progress = min(max((step - 2) / max(c.steps - 2, 1), 0.0), 1.0)
        pick = torch.randint(len(parents), (n,), generator=generator).tolist()
        if c.local_edits == "mutate":
            rate = LOCAL_RATES[0] + (LOCAL_RATES[1] - LOCAL_RATES[0]) * progress
            return mutate_edits(self.space, [parents[i] for i in pick], generator, rate)
        scale = LOCAL_SCALES[0] + (LOCAL_SCALES[1] - LOCAL_SCALES[0]) * progress
        return perturb_edits(self.space, [parents[i] for i in pick], generator, scale)

    def _random(self, k: int, generator: torch.Generator, method: str, step: int,
                avoid: set[str] = frozenset()) -> list[dict[str, Any]]:
        """``k`` distinct random students not evaluated before by this method."""
        seen = {self.records[i]["key"] for i in self.of(method) if self.records[i]["step"] < step} | set(avoid)
        proposals, keys = [], set()
        for _ in range(100):
            for edit in self.space.sample(max(k, 16), generator=generator):
                graph = self.space.apply(edit)
                key = graph.key()
                if key in seen or key in keys:
                    continue
                keys.add(key)
                proposals.append({"graph": graph, "edit": edit, "kernel": None, "acquisition": None})
                if len(proposals) == k:
                    return proposals
        raise ArchSearchError(
            f"search: found only {len(proposals)} new distinct students for step {step}; the search space of this "
            "teacher is too small for search.num_kernels, or enable more operators."
        )

    def _training_data(self, method: str, step: int) -> tuple[Tensor, Tensor, list[int]]:
        """The method's architectures evaluated before ``step`` (a resumed step's own records
        are left out, so it proposes what it proposed the first time)."""
        indices = [i for i in self.of(method) if self.records[i]["step"] < step]
        X = encode([self.graphs[i] for i in indices], self.L, dtype=torch.float64)
        Y = torch.tensor([[self.records[i]["reward"]] for i in indices], dtype=torch.float64)
        return X, Y, indices

    def _propose(self, method: str, step: int, generator: torch.Generator) -> list[dict[str, Any]]:
        c, k, a = self.config.search, self.config.kernel, self.config.acquisition
        X, Y, _ = self._training_data(method, step)
        local = self._local_edits(method, step, generator)
        proposal = propose_architectures(
            self.space, X, Y, max_layers=self.L, num_kernels=c.num_kernels, subset_prob=c.subset_prob,
            acquisition=a.name, num_candidates=a.num_candidates, method=a.method,
            kernel_options={"hidden_size": k.hidden_size, "num_layers": k.num_layers,
                            "init_scale": k.init_scale},
            fit_options={"objective": k.objective, "lr": k.lr, "weight_decay": k.weight_decay,
                         "max_steps": k.max_steps, "tol": k.tol},
            generator=generator, extra_candidates=local,
        )
        if self.run_dir is not None:
            folder = self.run_dir / "kernels" / f"{method}-step{step:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i, model in enumerate(proposal.models):
                save_kernel(model.covar_module, folder / f"kernel{i}.pt", noise=float(model.likelihood.noise.item()),
                            metadata={"teacher": self.teacher_info["name"], "step": step, "kernel": i,
                                      "fit_steps": proposal.fits[i].num_steps})
        return [{"graph": g, "edit": g.edit, "kernel": i, "acquisition": float(v)}
                for i, (g, v) in enumerate(zip(proposal.graphs, proposal.values))]

    def _propose_transfer(self, method: str, step: int, generator: torch.Generator) -> list[dict[str, Any]]:
        """Kernel transfer (paper 4.3): saved kernels score the candidates, no training."""
        c, a = self.config.search, self.config.acquisition
        paths, L = self.transfer
        _, Y, indices = self._training_data(method, step)
        X = encode([self.graphs[i] for i in indices], L, dtype=torch.float64)
        taken: set[bytes] = set()
        proposals = []
        for k in range(c.num_kernels):
            keep = random_subset(len(X), c.subset_prob, 2, generator)  # as propose_architectures draws them
            model = transferred_gp(paths[k % len(paths)], X[keep], Y[keep])
            acq = ACQUISITIONS[a.name](model, best_f=Y.max())
            result = optimize_acqf_edits(
                acq, self.space, max_layers=L, q=min(c.num_kernels, a.num_candidates),
                num_candidates=a.num_candidates, method=a.method, X_avoid=X,
                generator=torch.Generator().manual_seed(int(torch.randint(2**31 - 1, (1,), generator=generator))),
            )
            digests = row_digests(result.X)
            i = next((i for i, d in enumerate(digests) if d not in taken), None)
            if i is None:
                raise ArchSearchError(
                    f"kernel transfer: kernel {k} found no candidate that an earlier kernel did not propose; raise "
                    f"acquisition.num_candidates (now {a.num_candidates})."
                )
            taken.add(digests[i])
            proposals.append({"graph": result.graphs[i], "edit": result.edits[i], "kernel": k,
                              "acquisition": float(result.values[i])})
        return proposals

    def _evaluate(self, proposals: list[dict[str, Any]], method: str, step: int) -> None:
        if not proposals:
            return
        results = self.backend.evaluate([p["graph"] for p in proposals], derive_seed(self.config.seed, method, step, "evaluate"))
        r = self.config.reward
        for p, result in zip(proposals, results):
            graph = p["graph"]
            params, flops = count_params(graph), count_flops(graph)
            f = reward(
                result.accuracy if result.ok else 0.0, self.teacher.val_accuracy, params,
                self.teacher_info["params"], flops=flops, teacher_flops=self.teacher_info["flops"],
                measure=r.measure, budget=r.budget, budget_measure=r.budget_measure, failed=not result.ok,
            )
            record = {
                "index": len(self.records), "method": method, "step": step, "kernel": p["kernel"],
                "key": graph.key(), "params": params, "flops": flops, "accuracy": result.accuracy,
                "best_epoch": result.best_epoch, "reward": f, "acquisition": p["acquisition"],
                "seconds": result.seconds, "status": result.status, "reason": result.reason,
                "history": result.history,
                "architecture": graph.to_dict(), "edit": p["edit"].to_dict() if p["edit"] is not None else None,
                "encoding": encode([graph], self.L, dtype=torch.float64)[0].to(torch.int64).tolist(),
            }
            if p.get("target") is not None:
                record["target"] = p["target"]
            record = {k: _finite(v) for k, v in record.items()}
            self._keep_weights(method, record, result.state_dict)
            self.records.append(record)
            self.graphs.append(graph)
            if self.journal is not None:
                self.journal.append(record)
            if self.tensorboard is not None:
                self.tensorboard.log_record(record, self.best(method)["reward"] if self.best(method) else 0.0)

    # ---------------------------------------------------------------- weights and final training
    def _keep_weights(self, method: str, record: dict[str, Any], state_dict: dict | None) -> None:
        """Keep the distilled weights of the method's current top-k students (for the final
        training): on disk in the run directory, written before the journal record."""
        if state_dict is None or record["status"] != "ok":
            return
        k = max(self.config.final.top_k, 1)
        before = {r["index"] for r in self.top(method, k)}
        ok = [self.records[i] for i in self.of(method) if self.records[i]["status"] == "ok"]
        after = {r["index"] for r in sorted([*ok, record], key=lambda r: (-r["reward"], r["index"]))[:k]}
        if record["index"] in after:
            if self.run_dir is None:
                self._kept[record["index"]] = state_dict
            else:
                path = self.run_dir / "weights" / f"{record['index']}.pt"
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.save(state_dict, path)
        for index in before - after:
            if self.run_dir is None:
                self._kept.pop(index, None)
            else:
                (self.run_dir / "weights" / f"{index}.pt").unlink(missing_ok=True)

    def _weights(self, index: int) -> dict | None:
        if self.run_dir is None:
            return self._kept.get(index)
        path = self.run_dir / "weights" / f"{index}.pt"
        return torch.load(path, map_location="cpu", weights_only=True) if path.exists() else None

    def train_final(self, methods: list[str]) -> list[dict[str, Any]]:
        f = self.config.final
        done: dict[tuple[str, int], dict] = {}
        final_path = None if self.run_dir is None else self.run_dir / FINAL_NAME
        if final_path is not None:
            for record in read_journal(final_path).records:
                done[(record["method"], record["index"])] = record
        final = []
        for method in methods:
            for rank, record in enumerate(self.top(method, f.top_k), 1):
                if (method, record["index"]) in done:
                    final.append(done[(method, record["index"])])
                    continue
                entry = {
                    "method": method, "index": record["index"], "rank": rank, "params": record["params"],
                    "flops": record["flops"], "search_accuracy": record["accuracy"], "reward": record["reward"],
                    "val_accuracy": None, "test_accuracy": None, "seconds": None, "path": None,
                    "status": "ok", "reason": None,
                }
                start = time.perf_counter()
                try:
                    student = build_student(self.graphs[record["index"]], self.teacher.model)
                    weights = self._weights(record["index"])
                    if weights is not None:
                        student.load_state_dict(weights)
                    result = self.backend.finetune(
                        student, epochs=f.epochs, lr=f.lr, step_size=f.step_size, batch_size=f.batch_size,
                        seed=derive_seed(self.config.seed, method, record["index"], "final"), max_batches=f.max_batches,
                        device=self.config.evaluation.device, progress=self.config.progress,
                    )
                except (ArchSearchError, RuntimeError, ValueError, MemoryError) as error:
                    # NaN, out of memory, a dead training process: this student only, the next one trains
                    entry.update(status="failed", reason=failure_reason(error), seconds=time.perf_counter() - start)
                    logger.warning("%s rank %d (evaluation %d): final training failed: %s", method, rank,
                                   record["index"], entry["reason"])
                else:
                    entry.update(val_accuracy=result.val_accuracy, test_accuracy=result.test_accuracy,
                                 seconds=result.seconds)
                    if self.run_dir is not None:
                        entry["path"] = f"best/{method}-{rank}"
                        save_student(student.cpu(), self.run_dir / entry["path"])
                    logger.info(
                        "%s rank %d (evaluation %d): test accuracy %.4f after %d epochs of full training, %s "
                        "parameters", method, rank, record["index"], result.test_accuracy, f.epochs,
                        f"{record['params']:,}",
                    )
                if self.run_dir is not None:
                    with Journal(final_path) as journal:
                        journal.append(entry)
                final.append(entry)
        return final


def make_backend(config: CompressConfig, teacher: Teacher, data: ImageDataset) -> LocalBackend | DaskBackend:
    r"""The evaluation backend of ``config.evaluation`` for ``teacher`` on ``data``."""
    e = config.evaluation
    options = {"epochs": e.epochs, "lr": e.lr, "weight_decay": e.weight_decay, "batch_size": e.batch_size,
               "loss": e.loss, "temperature": e.temperature, "device": e.device, "max_batches": e.max_batches,
               "bf16": e.bf16}
    if e.backend == "dask":
        d = e.dask
        return DaskBackend(teacher.model, data, options, address=d.address, workers=d.workers,
                           threads_per_worker=d.threads_per_worker, gpus_per_worker=d.gpus_per_worker,
                           retries=d.retries, dashboard=d.dashboard)
    return LocalBackend(teacher.model, data, {**options, "workers": e.workers, "progress": config.progress},
                        isolation=e.isolation)


def run_methods(config: CompressConfig) -> list[str]:
    r"""The methods a search of ``config`` runs, in order: the search method(s) (``"both"``:
    random search, then ESNAC), then the one-shot ``search.baselines``."""
    m = config.search.method
    methods = ["random", "esnac"] if m == "both" else [m]
    return methods + [b for b in config.search.baselines if b not in methods]


def record_graph(space: SearchSpace, record: dict[str, Any]) -> ArchGraph:
    r"""The student graph of a journal record, rebuilt from its edit of ``space``'s teacher.

    Unlike ``ArchGraph.from_dict(record["architecture"])``, the graph knows which teacher channels
    and layers it keeps, so :func:`~botorch_archsearch.graph.build_student` gives it exactly the
    weights it inherited when it was evaluated.

    Args:
        space: The search space of the run's teacher.
        record: A journal record (with ``edit`` and ``key``).

    Returns:
        The graph, with ``base`` and ``edit`` set.

    Raises:
        ArchSearchError: If the record's edit does not give its architecture on this teacher (a
            journal of another teacher or search space).
    """
    where = f"journal record {record.get('index')}"
    try:
        graph = space.apply(Edit.from_dict(record["edit"]))
    except (ArchSearchError, KeyError, TypeError, ValueError, IndexError) as error:
        raise ArchSearchError(
            f"{where}: its edit does not apply to this teacher ({type(error).__name__}: {error}); the journal was "
            "written by a search of another teacher or search space."
        ) from None
    if graph.key() != record["key"]:
        raise ArchSearchError(
            f"{where}: its edit gives another architecture on this teacher than the one it recorded; the journal "
            "was written by a search of another teacher or search space."
        )
    return graph


def _transfer_kernels(run_dir: str, L: int) -> tuple[list[Path], int]:
    """The last step's saved kernels of a run directory, and the ``max_layers`` they read."""
    folder = Path(run_dir) / "kernels"
    steps = sorted(p for p in folder.glob("*-step*") if p.is_dir()) if folder.is_dir() else []
    if not steps:
        raise ArchSearchError(
            f"kernel.transfer_from: no saved kernels under {str(folder)!r}; give the run directory of an ESNAC "
            "search (it saves kernels/<method>-stepNNN/kernelK.pt)."
        )
    paths = sorted(steps[-1].glob("kernel*.pt"))
    max_layers = load_kernel(paths[0]).kernel.embedding.max_layers
    if max_layers < L:
        raise ArchSearchError(
            f"kernel.transfer_from: the saved kernels read architectures of at most {max_layers} layers; this "
            f"teacher has {L}. Transfer from a search on a teacher with at least as many layers."
        )
    return paths, max_layers


def resolve_teacher(teacher: nn.Module | Teacher | None, data: ImageDataset, config: CompressConfig,
                    device: torch.device) -> Teacher:
    """The search's teacher: ``teacher`` as given (a module is measured on ``data``), or the one
    ``config.teacher`` names (a checkpoint, or trained and cached)."""
    if isinstance(teacher, Teacher):
        return teacher
    if isinstance(teacher, nn.Module):
        check_teacher_input(teacher, data, name=type(teacher).__name__)
        return load_teacher(teacher, data, device=device)
    if teacher is not None:
        raise ArchSearchError(f"compress: teacher must be an nn.Module, a Teacher or None, got {type(teacher).__name__}.")
    t = config.teacher
    name = t.module if t.kind == "module" else t.name
    what = {"zoo": f"teacher {name!r}", "torchvision": f"torchvision teacher {name!r}",
            "module": f"teacher.module={name!r}"}[t.kind]
    fresh = build_teacher(name, kind=t.kind, num_classes=data.num_classes, in_channels=data.in_channels, width=t.width)
    check_teacher_input(fresh, data, name=what)
    if t.kind != "zoo" and not t.checkpoint:  # a network that cannot be searched is refused before it is trained
        trace(fresh.eval(), torch.zeros(1, data.in_channels, data.image_size, data.image_size))
    if t.checkpoint:
        return load_teacher(t.checkpoint, data, name=name, kind=t.kind, width=t.width, device=device)
    return trained_teacher(
        name, data, kind=t.kind, width=t.width, epochs=t.epochs, lr=t.lr, batch_size=t.batch_size, seed=t.seed,
        cache_dir=t.cache_dir, device=device, max_batches=t.max_batches, progress=config.progress,
    )


def check_teacher_input(model: nn.Module, data: ImageDataset, name: str = "teacher") -> None:
    r"""Check that ``model`` takes the dataset's images and predicts its classes.

    Raises:
        ArchSearchError: Naming the teacher, the image shape and what went wrong.
    """
    shape = (1, data.in_channels, data.image_size, data.image_size)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(shape, device=next(model.parameters()).device))
    except Exception as error:  # noqa: BLE001 - any failure means the same to the user
        first = str(error).splitlines()[0] if str(error) else ""
        advice = (f"build it for {data.in_channels}-channel images (a teacher.module function is given in_channels "
                  "if it takes it) or use another dataset" if "channels" in first else
                  "use a dataset with larger images (dataset.image_size=32) or another teacher")
        raise ArchSearchError(
            f"{name} cannot take dataset {data.name!r} images of shape {shape[1:]} ({type(error).__name__}: "
            f"{first}); {advice}."
        ) from error
    finally:
        model.train(was_training)
    if out.shape[-1] != data.num_classes:
        raise ArchSearchError(
            f"{name} predicts {out.shape[-1]} classes but dataset {data.name!r} has {data.num_classes}."
        )


def space_options(config: CompressConfig) -> dict[str, Any]:
    """The keyword arguments of the search's :class:`~botorch_archsearch.space.SearchSpace`."""
    s = config.search
    options: dict[str, Any] = {"removal": s.removal, "shrinkage": s.shrinkage, "skip": s.skip,
                               "channel_order": s.channel_order, "shrink_spread": s.shrink_spread}
    if s.removal_probs is not None:
        options["removal_probs"] = tuple(s.removal_probs)
    if s.shrink_range is not None:
        options["shrink_range"] = tuple(s.shrink_range)
    if s.skip_probs is not None:
        options["skip_probs"] = tuple(s.skip_probs)
    return options


def _create_run_dir(run_dir: Path, resume: bool) -> None:
    """A run directory to resume must exist; a new one is created (before its lock is taken)."""
    if resume:
        if not (run_dir / CONFIG_NAME).exists():
            raise ArchSearchError(f"resume: {str(run_dir)!r} is not a run directory (no {CONFIG_NAME}).")
        return
    make_dir(run_dir, "run directory")


def _prepare_run_dir(run_dir: Path, config: CompressConfig, resume: bool) -> None:
    """A new run: write its config and identity. A resumed one: check the config against the
    identity it was started with, then save the config it continues with (the resumable keys may
    have changed, e.g. ``search.steps`` to extend it)."""
    path, values = run_dir / CONFIG_NAME, json.loads(json.dumps(config.to_dict()))
    if resume:
        if (run_dir / RUN_NAME).exists():
            started, source = _read_json(run_dir / RUN_NAME).get("identity"), RUN_NAME
        else:  # a run directory written before run.json: its config.json is all it has
            started, source = read_saved_config(run_dir), CONFIG_NAME
        if not isinstance(started, dict):
            raise ArchSearchError(f"resume: {str(run_dir / source)!r} holds no run identity; it was not written "
                                  "by a search.")
        started = _without_resumable(upgrade_saved_config(started))
        differences = _differences(started, _without_resumable(values))
        if differences:
            raise ArchSearchError(
                f"resume: the config differs from the one {str(run_dir)!r} was started with ({source}) in "
                f"{'; '.join(differences)}. Only {', '.join(RESUMABLE_KEYS)} may change on resume. Resume with the "
                f"run's settings (the Hydra app: resume=<run dir> with no other overrides; in Python: "
                f"CompressConfig.from_dict(upgrade_saved_config(json.loads(<{CONFIG_NAME}>.read_text()))) if "
                f"{CONFIG_NAME} was not edited)."
            )
        if not (run_dir / RUN_NAME).exists():
            _write_json(run_dir / RUN_NAME, {"identity": started})
        _write_json(path, values)
        return
    if (run_dir / JOURNAL_NAME).exists() and read_journal(run_dir / JOURNAL_NAME).records:
        raise ArchSearchError(
            f"{str(run_dir)!r} already holds a search journal; resume it (resume=True) or use another directory."
        )
    _write_json(path, values)
    _write_json(run_dir / RUN_NAME, {"identity": _without_resumable(values)})


def _check_and_write_teacher(run_dir: Path, teacher_info: dict[str, Any], resume: bool) -> None:
    """Write ``teacher.json``; on resume, first check that the teacher is the run's."""
    path = run_dir / TEACHER_NAME
    if resume and path.exists():
        started = _read_json(path)
        differ = [f"{key}: started with {started.get(key)!r}, now {teacher_info[key]!r}"
                  for key in ("name", "params", "flops") if key in started and started[key] != teacher_info[key]]
        if differ:
            raise ArchSearchError(
                f"resume: the teacher differs from the one {str(run_dir)!r} was started with ({TEACHER_NAME}): "
                f"{'; '.join(differ)}. Resume with the run's teacher."
            )
    path.write_text(json.dumps(teacher_info, indent=2))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ArchSearchError(f"{str(path)!r} cannot be read as JSON ({error}); restore it or start a new run.") from None


def _write_json(path: Path, values: dict[str, Any]) -> None:
    path.write_text(json.dumps(values, indent=2, sort_keys=True))


def _differences(started: Any, given: Any, prefix: str = "") -> list[str]:
    """``key: started with A, given B`` for each dotted key whose values differ."""
    if isinstance(started, dict) and isinstance(given, dict):
        return [line for key in sorted({*started, *given})
                for line in _differences(started.get(key, _MISSING), given.get(key, _MISSING),
                                         f"{prefix}.{key}" if prefix else key)]
    if started == given:
        return []
    return [f"{prefix}: started with {_show(started)}, given {_show(given)}"]


_MISSING = object()


def _show(value: Any) -> str:
    return "(missing)" if value is _MISSING else json.dumps(value)


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such a float is recorded as ``None``."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


DEFAULT_TARGETS: tuple[float, ...] = (0.5, 0.25, 0.125)
"""One-shot targets (fractions of the teacher's size) when nothing else sets them."""

INIT_TARGETS: tuple[float, ...] = (1 / 3, 1 / 6, 1 / 10)
"""With ``search.init=oneshot``, ESNAC's first step evaluates ``magnitude`` and ``uniform`` students
at these fractions of the teacher's size (3x, 6x and 10x smaller), in turn."""

LOCAL_PARENTS = 4
"""Local edits mutate the best this many students so far."""

LOCAL_RATES: tuple[float, float] = (0.2, 0.05)
"""``search.local_edits=mutate``: the mutation rate at the second step and at the last (linear in
between)."""

LOCAL_SCALES: tuple[float, float] = (0.15, 0.05)
"""``search.local_edits=perturb``: the step size of :func:`~botorch_archsearch.space.perturb_edits`
at the second step and at the last (linear in between)."""

RESUMABLE_KEYS = (
    "search.steps",
    "evaluation.backend",
    "evaluation.dask",
    "evaluation.workers",
    "evaluation.isolation",
    "progress",
)
"""The settings that may change when a search is resumed (a key and everything under it): more
steps extend the run; the others change where and how fast it runs, not its result (another Dask
scheduler, another number of threads). Everything else is the run's identity, checked on resume."""


def is_resumable(key: str) -> bool:
    r"""Whether the dotted config ``key`` may change on resume (it is, or is under, one of the
    :data:`RESUMABLE_KEYS`; e.g. ``evaluation.dask.workers``)."""
    return any(key == k or key.startswith(k + ".") for k in RESUMABLE_KEYS)


def _without_resumable(values: dict[str, Any]) -> dict[str, Any]:
    values = json.loads(json.dumps(values))
    for dotted in RESUMABLE_KEYS:
        *parents, last = dotted.split(".")
        node = values
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return values


def derive_seed(seed: int, *tags: Any) -> int:
    """A seed for one part of a search (``tags``: its name, step, ...), derived from the search's
    ``seed`` so that parts do not share random streams."""
    digest = hashlib.sha256(json.dumps([seed, *tags]).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**62 - 1)


def _generator(seed: int, *tags: Any) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, *tags))


def _summary(records: list[dict], best: dict[str, dict], final: list[dict], teacher: dict) -> str:
    rows = [("method", "best f(x)", "accuracy", "test acc.", "#params", "ratio", "evaluations", "failed", "search time")]
    rows.append(("teacher", "-", f"{teacher['val_accuracy']:.4f}",
                 "-" if teacher["test_accuracy"] is None else f"{teacher['test_accuracy']:.4f}",
                 f"{teacher['params']:,}", "1.0x", "-", "-", "-"))
    for method, b in best.items():
        mine = [r for r in records if r["method"] == method]
        test = next((f["test_accuracy"] for f in final if f["method"] == method and f["rank"] == 1), None)
        rows.append((method, f"{b['reward']:.4f}", f"{b['accuracy']:.4f}", "-" if test is None else f"{test:.4f}",
                     f"{b['params']:,}", f"{teacher['params'] / max(b['params'], 1):.1f}x", str(len(mine)),
                     str(sum(r["status"] != "ok" for r in mine)), format_seconds(sum(r["seconds"] for r in mine))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows]
    return "\n".join(["summary:", *lines])


__all__ = [
    "CONFIG_NAME",
    "FINAL_NAME",
    "RESUMABLE_KEYS",
    "RUN_NAME",
    "SearchResult",
    "check_teacher_input",
    "compress",
    "is_resumable",
    "record_graph",
    "run_methods",
]
