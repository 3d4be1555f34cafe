r"""Where students are evaluated: in this process (``local``), or on a Dask cluster (``dask``).

The local backend distils the ``K`` students of a step together in lock-step
(:func:`~botorch_archsearch.evaluation.evaluate_students`). The Dask backend submits one task per
student to a ``dask.distributed`` cluster (an existing scheduler, or a ``LocalCluster`` started on
127.0.0.1 for the search); each worker distils whole students, one per GPU when workers have GPUs
(a ``GPU`` worker resource). The teacher and the dataset are scattered to every worker once per
search. A student is trained exactly as it would be alone in the local backend (same batches,
same seed, one intra-op thread), so on a CPU both backends give the same records.

A worker that dies while training a student (a killed process) has the student re-submitted to
another worker by the scheduler, up to ``retries`` times (a task that fails for another reason,
such as fetching the teacher from a worker that just died, is re-run as often); after that the
student is recorded as failed with the reason and the search goes on. A lost scheduler stops the search with a
:class:`ClusterLostError`; the run directory can be resumed.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

import torch
from torch import nn

from botorch_archsearch.evaluation import ImageDataset, StudentResult, evaluate_students
from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph import ArchGraph, build_student
from botorch_archsearch.graph.build import StudentNet

logger = logging.getLogger("botorch_archsearch")

BACKENDS = ("local", "dask")


class ClusterLostError(ArchSearchError):
    r"""The Dask scheduler went away during a search (resume the run directory)."""


class LocalBackend:
    r"""Students distilled in this process, in lock-step."""

    def __init__(self, teacher: nn.Module, data: ImageDataset, options: dict[str, Any]) -> None:
        r"""Create the backend.

        Args:
            teacher: The teacher network.
            data: The dataset.
            options: Keyword arguments of :func:`~botorch_archsearch.evaluation.evaluate_students`.
        """
        self.teacher, self.data, self.options = teacher, data, options

    def evaluate(self, graphs: list[ArchGraph], seed: int) -> list[StudentResult]:
        r"""Distil the students of ``graphs`` (weights inherited from the teacher)."""
        students = [build_student(g, self.teacher) for g in graphs]
        return evaluate_students(self.teacher, students, self.data, seed=seed, **self.options)

    def close(self) -> None:
        r"""Nothing to release."""


def _evaluate_remote(teacher: nn.Module, data: ImageDataset, graph: dict, state: dict, seed: int,
                     options: dict[str, Any], threads: int) -> StudentResult:
    """A Dask task: distil one student (built from its architecture and inherited weights)."""
    torch.set_num_threads(threads)
    device = options.get("device") or "cpu"
    if torch.device(device).type == "cuda":
        from distributed import get_worker

        cache = get_worker().data.setdefault("_botorch_archsearch_device", {})  # per-worker copies
        key = (id(teacher), id(data), device)
        if key not in cache:
            cache.clear()
            cache[key] = (teacher.to(device), data.to(device))
        teacher, data = cache[key]
    student = StudentNet(ArchGraph.from_dict(graph))
    student.load_state_dict(state)
    options = {**options, "workers": 1, "progress": False}
    return evaluate_students(teacher, [student], data, seed=seed, **options)[0]


class DaskBackend:
    r"""Students distilled on a Dask cluster, one task per student."""

    def __init__(
        self,
        teacher: nn.Module,
        data: ImageDataset,
        options: dict[str, Any],
        address: str | None = None,
        workers: int = 2,
        threads_per_worker: int = 1,
        gpus_per_worker: int = 0,
        retries: int = 2,
        dashboard: bool = False,
    ) -> None:
        r"""Connect to (or start) the cluster and send it the teacher and the dataset.

        Args:
            teacher: The teacher network.
            data: The dataset.
            options: Keyword arguments of :func:`~botorch_archsearch.evaluation.evaluate_students`.
            address: A scheduler to join (``tcp://host:8786``); ``None`` starts a ``LocalCluster``
                on 127.0.0.1 with ``workers`` worker processes for the search.
            workers: Worker processes of the local cluster.
            threads_per_worker: Threads of each local worker (and intra-op threads per student).
            gpus_per_worker: ``GPU`` resources of each local worker; with GPUs, each task asks for
                one, so each GPU trains one student at a time.
            retries: How many times a student whose worker died is re-submitted (the local
                cluster's ``allowed-failures``).
            dashboard: Serve the local cluster's dashboard on 127.0.0.1:8787.
        """
        import dask
        from distributed import Client, LocalCluster

        self.teacher_module = copy.deepcopy(teacher).cpu()  # for the students' inherited weights
        self.retries, self.threads = retries, threads_per_worker
        self.options = options
        self.cluster = None
        self.resources = {"GPU": 1} if gpus_per_worker or (options.get("device") or "cpu").startswith("cuda") else None
        start = time.perf_counter()
        if address is None:
            with dask.config.set({"distributed.scheduler.allowed-failures": retries}):
                self.cluster = LocalCluster(
                    n_workers=workers, threads_per_worker=threads_per_worker, processes=True, host="127.0.0.1",
                    dashboard_address="127.0.0.1:8787" if dashboard else None,
                    resources={"GPU": gpus_per_worker} if gpus_per_worker else None,
                    silence_logs=logging.ERROR,
                )
            self.client = Client(self.cluster)
        else:
            self.client = Client(address, timeout="30s")
        self.address = self.client.scheduler.address
        # Sent once per search; every task refers to these copies.
        self._teacher = self.client.scatter(self.teacher_module, broadcast=True, hash=False)
        self.data_cpu = data.to("cpu")
        self._data = self.client.scatter(self.data_cpu, broadcast=True, hash=False)
        logger.info("Dask backend: scheduler %s, %d workers, teacher and data sent in %.1f s", self.address,
                    len(self.client.scheduler_info()["workers"]), time.perf_counter() - start)

    def evaluate(self, graphs: list[ArchGraph], seed: int) -> list[StudentResult]:
        r"""Distil the students of ``graphs``, one task each; failures are recorded, not raised.

        Args:
            graphs: The students' architectures (weights inherited from the teacher here, sent
                with the task).
            seed: The batch-order seed (the same for all, as in lock-step).

        Raises:
            ClusterLostError: If the scheduler went away.
        """
        from concurrent.futures import CancelledError

        from distributed import KilledWorker

        futures, results = [], []
        try:
            self._ensure_scattered()
            for graph in graphs:
                state = build_student(graph, self.teacher_module).state_dict()
                futures.append(self.client.submit(
                    _evaluate_remote, self._teacher, self._data, graph.to_dict(), state, seed, self.options,
                    self.threads, pure=False, resources=self.resources, retries=self.retries,
                ))
            for future in futures:
                try:
                    results.append(future.result())
                except KilledWorker as error:
                    results.append(StudentResult(
                        status="failed",
                        reason=f"its Dask worker died while training it, {self.retries + 1} times ({error})",
                    ))
                except CancelledError as error:  # the workers holding the teacher/data died too
                    results.append(StudentResult(
                        status="failed",
                        reason=f"its Dask worker died while training it, and so did every copy of the teacher "
                               f"and data it needed ({type(error).__name__}: {error})",
                    ))
                except (OSError, TimeoutError):
                    raise
                except Exception as error:  # noqa: BLE001 - the task itself failed: this student only
                    results.append(StudentResult(status="failed", reason=f"{type(error).__name__}: {error}"))
        except (OSError, TimeoutError) as error:
            raise ClusterLostError(
                f"the Dask scheduler at {self.address} went away ({type(error).__name__}: {error}); the "
                "evaluated architectures are in the journal: resume the run directory (resume=<run dir>)."
            ) from error
        finally:
            for future in futures:
                future.cancel()
        return results

    def _ensure_scattered(self) -> None:
        """Send the teacher and the dataset again if every worker holding them died."""
        if self._teacher.status != "finished" or self._data.status != "finished":
            logger.warning("Dask backend: the workers holding the teacher and data died; sending them again")
            self._teacher = self.client.scatter(self.teacher_module, broadcast=True, hash=False)
            self._data = self.client.scatter(self.data_cpu, broadcast=True, hash=False)

    def close(self) -> None:
        r"""Disconnect, and stop the local cluster if this backend started one."""
        try:
            self.client.close(timeout=5)
        finally:
            if self.cluster is not None:
                self.cluster.close()


__all__ = ["BACKENDS", "ClusterLostError", "DaskBackend", "LocalBackend"]
