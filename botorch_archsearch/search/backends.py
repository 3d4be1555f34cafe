r"""Where students are evaluated: on this machine (``local``), or on a Dask cluster (``dask``).

The local backend distils the ``K`` students of a step together in lock-step
(:func:`~botorch_archsearch.evaluation.evaluate_students`), by default (on a CPU) in a worker
process that holds the teacher and the dataset for the whole search (``isolation="process"``): a
student whose training kills its process (a segfault or abort in native code) is then recorded
as failed with the reason, and the search goes on. When the worker dies during a step, it is
restarted and each of the step's students is trained alone in it, which gives each the result it
would have had in lock-step; those that kill it again are the failed ones. The final training of
the best students runs there too. ``isolation="none"`` trains in the search's own process.

The Dask backend submits one task per
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
import multiprocessing
import pickle
import signal
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from botorch_archsearch.evaluation import ImageDataset, StudentResult, TrainResult, evaluate_students, finetune
from botorch_archsearch.evaluation.numerics import start_probe
from botorch_archsearch.exceptions import (
    ArchSearchError,
    ArchSearchRuntimeError,
    ClusterLostError,
    failure_reason,
)
from botorch_archsearch.graph import ArchGraph, build_student
from botorch_archsearch.graph.build import StudentNet
from botorch_archsearch.space import Student
from botorch_archsearch.utils.torchvision import TorchvisionFirst, uses_torchvision

logger = logging.getLogger("botorch_archsearch")

BACKENDS = ("local", "dask")
ISOLATIONS = ("process", "none")


class LocalBackend:
    r"""Students distilled on this machine, in lock-step, in a worker process or in this one."""

    def __init__(self, teacher: nn.Module, data: ImageDataset, options: dict[str, Any],
                 isolation: str | None = None) -> None:
        r"""Create the backend (and start its worker process in the background).

        Args:
            teacher: The teacher network.
            data: The dataset.
            options: Keyword arguments of :func:`~botorch_archsearch.evaluation.evaluate_students`.
            isolation: ``"process"``: train in a worker process, restarted when a student kills
                it; ``"none"``: in this process; ``None``: ``"process"`` on a CPU, ``"none"`` on
                CUDA (a second process would hold a second copy of the teacher and data there).
        """
        self.teacher, self.data, self.options = teacher, data, options
        device = torch.device(options.get("device") or data.device)
        self.isolation = isolation if isolation is not None else ("process" if device.type == "cpu" else "none")
        if self.isolation not in ISOLATIONS:
            raise ArchSearchError(f"isolation must be one of {list(ISOLATIONS)} or None, got {isolation!r}.")
        self._worker: _WorkerProcess | None = None
        # The numerics guard's probe starts while the search gets ready (where it will be asked).
        self._probe = device.type == "cpu" and options.get("channels_last", True)
        if self.isolation == "process":
            self._worker = _WorkerProcess(teacher, data, self._probe)
        elif self._probe:
            start_probe()

    def evaluate(self, students: Sequence[Student | ArchGraph], seed: int) -> list[StudentResult]:
        r"""Distil ``students`` (weights inherited from the teacher through each
        :class:`~botorch_archsearch.space.Student`; an :class:`ArchGraph` is the teacher's own; a
        built ``StudentNet`` keeps its weights, e.g. from a method's weight source)."""
        students = [_built(s, self.teacher) for s in students]
        if self.isolation == "none":
            return evaluate_students(self.teacher, students, self.data, seed=seed, **self.options)
        try:
            return self._call("evaluate", students, seed, self.options)
        except _WorkerDied as error:
            death = error
        if len(students) == 1:
            return [_died(death)]
        logger.warning("the process training %d students died (%s); training each alone to find which",
                       len(students), death)
        results = []
        for student in students:
            try:
                results.extend(self._call("evaluate", [student], seed, self.options))
            except _WorkerDied as again:
                results.append(_died(again))
        return results

    def finetune(self, student: nn.Module, **options: Any) -> TrainResult:
        r"""Fully train ``student`` (:func:`~botorch_archsearch.evaluation.finetune` on the
        backend's data); ``student`` ends with the trained weights.

        Raises:
            ArchSearchRuntimeError: If the training failed, or killed the worker process.
        """
        if self.isolation == "none":
            return finetune(student, self.data, **options)
        try:
            result, state = self._call("finetune", student, options)
        except _WorkerDied as death:
            raise ArchSearchRuntimeError(f"fine-tune: its training process died ({death})") from None
        student.load_state_dict(state)
        return result

    def _call(self, name: str, *args: Any) -> Any:
        if self._worker is None or not self._worker.alive():
            self._worker = _WorkerProcess(self.teacher, self.data, self._probe)
        try:
            return self._worker.call(name, *args)
        except _WorkerDied:
            self._worker.close()
            self._worker = None
            raise

    def close(self) -> None:
        r"""Stop the worker process."""
        if self._worker is not None:
            self._worker.close()
            self._worker = None


class _WorkerDied(RuntimeError):
    """The worker process ended while it trained (its exit code or signal in the message)."""


class _WorkerProcess:
    """A spawned process that holds the teacher and the dataset and trains students on request."""

    def __init__(self, teacher: nn.Module, data: ImageDataset, probe: bool = True) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self.connection, child = context.Pipe()
        self.process = context.Process(
            target=_worker_main, args=(child, _Shipped(teacher), data, torch.get_num_threads(), probe), daemon=True,
            name="botorch-archsearch-student-worker",
        )
        self.process.start()
        child.close()

    def alive(self) -> bool:
        return self.process.is_alive()

    def call(self, name: str, *args: Any) -> Any:
        try:
            self.connection.send_bytes(pickle.dumps((name, args), pickle.HIGHEST_PROTOCOL))
            ok, value, said = pickle.loads(self.connection.recv_bytes())
        except (EOFError, OSError):
            self.process.join(10)
            code = self.process.exitcode
            cause = ("still running" if code is None else
                     f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}")
            raise _WorkerDied(cause) from None
        for level, message in said:  # the worker's log lines, in the search's log
            logger.log(level, "%s", message)
        if not ok:  # the worker's one-line reason, as bad input or as a failure of the run
            reason, bad_input = value
            raise (ArchSearchError if bad_input else ArchSearchRuntimeError)(reason)
        return value

    def close(self) -> None:
        try:
            self.connection.send_bytes(pickle.dumps(None))
        except OSError:
            pass
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self.connection.close()


def _worker_main(connection: Any, shipped: _Shipped, data: ImageDataset, threads: int, probe: bool) -> None:
    """The worker process: distil or fine-tune the students it is sent until told to stop (``probe``:
    start the numerics guard's probe at once)."""
    teacher = shipped.module
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the search's process
    torch.set_num_threads(threads)
    said = _Collect()  # this process's log lines go back with each reply, to the search's log
    logger.addHandler(said)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if probe:
        start_probe()
    while True:
        # Plain pickles, not the multiprocessing pickler: that one puts tensors in shared memory,
        # where training here would change the search's copies of the students (and is slower).
        try:
            message = pickle.loads(connection.recv_bytes())
        except EOFError:  # the search's process is gone
            return
        if message is None:
            return
        name, args = message
        try:
            if name == "evaluate":
                students, seed, options = args
                value = evaluate_students(teacher, students, data, seed=seed, **options)
            else:
                student, options = args
                result = finetune(student, data, **options)
                value = (result, {k: v.cpu() for k, v in student.state_dict().items()})
            reply = (True, value)
        except Exception as error:  # noqa: BLE001 - sent back as the search's own error
            reply = (False, (failure_reason(error), isinstance(error, ArchSearchError)))
        connection.send_bytes(pickle.dumps((*reply, said.take()), pickle.HIGHEST_PROTOCOL))


class _Shipped:
    """The teacher as sent to another process: unpickling it there imports torchvision first when the
    teacher is a torchvision model (a plain ``import torchvision`` may fail, see
    :func:`~botorch_archsearch.utils.import_torchvision`)."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __reduce__(self) -> tuple[Any, tuple[Any, nn.Module]]:
        return _unship, (TorchvisionFirst() if uses_torchvision(self.module) else None, self.module)


def _unship(first: Any, module: nn.Module) -> _Shipped:
    return _Shipped(module)


class _Collect(logging.Handler):
    """Log lines kept as ``(level, message)`` until taken."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelno, record.getMessage()))

    def take(self) -> list[tuple[int, str]]:
        lines, self.lines = self.lines, []
        return lines


def _built(student: Student | ArchGraph | StudentNet, teacher: nn.Module) -> StudentNet:
    """The network of a student: built with the teacher's weights, or as given (a network built
    from another weight source)."""
    return student if isinstance(student, StudentNet) else build_student(student, teacher)


def _died(death: _WorkerDied) -> StudentResult:
    return StudentResult(status="failed", reason=f"its training process died ({death})")


def _evaluate_remote(shipped: _Shipped, data: ImageDataset, graph: dict, state: dict, seed: int,
                     options: dict[str, Any], threads: int) -> StudentResult:
    """A Dask task: distil one student (built from its architecture and inherited weights)."""
    teacher = shipped.module
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
            # Without the dashboard the scheduler still serves its health and metrics routes over HTTP, on
            # 8787 unless told otherwise (a second search, or a test, then warns "Port 8787 is already in
            # use"): an ephemeral loopback port instead.
            http = {} if dashboard else {"dashboard": False, "dashboard_address": "127.0.0.1:0"}
            with dask.config.set({"distributed.scheduler.allowed-failures": retries}):
                self.cluster = LocalCluster(
                    n_workers=workers, threads_per_worker=threads_per_worker, processes=True, host="127.0.0.1",
                    dashboard_address="127.0.0.1:8787" if dashboard else None,
                    resources={"GPU": gpus_per_worker} if gpus_per_worker else None,
                    silence_logs=logging.ERROR, scheduler_kwargs=http,
                )
            self.client = Client(self.cluster)
        else:
            self.client = Client(address, timeout="30s")
        self.address = self.client.scheduler.address
        # Sent once per search; every task refers to these copies.
        self._teacher = self.client.scatter(_Shipped(self.teacher_module), broadcast=True, hash=False)
        self.data_cpu = data.to("cpu")
        self._data = self.client.scatter(self.data_cpu, broadcast=True, hash=False)
        logger.info("Dask backend: scheduler %s, %d workers, teacher and data sent in %.1f s", self.address,
                    len(self.client.scheduler_info()["workers"]), time.perf_counter() - start)

    def evaluate(self, students: Sequence[Student | ArchGraph], seed: int) -> list[StudentResult]:
        r"""Distil ``students``, one task each; failures are recorded, not raised.

        Args:
            students: The students (:class:`~botorch_archsearch.space.Student`, or the teacher's
                own :class:`ArchGraph`; their weights are inherited from the teacher here), or
                built ``StudentNet`` networks (their own weights); each is sent, architecture and
                weights, with its task.
            seed: The batch-order seed (the same for all, as in lock-step).

        Raises:
            ClusterLostError: If the scheduler went away.
        """
        from concurrent.futures import CancelledError

        from distributed import KilledWorker

        payloads = []
        for student in students:
            net = _built(student, self.teacher_module)
            payloads.append((net.graph.to_dict(), net.state_dict()))
        results: list[StudentResult | None] = [None] * len(payloads)
        pending, resends = list(range(len(payloads))), 0
        futures: list[Any] = []
        try:
            self._ensure_scattered()
            while pending:
                futures = [self.client.submit(
                    _evaluate_remote, self._teacher, self._data, *payloads[i], seed, self.options, self.threads,
                    pure=False, resources=self.resources, retries=self.retries,
                ) for i in pending]
                lost = []
                for i, future in zip(pending, futures):
                    try:
                        results[i] = future.result()
                    except KilledWorker as error:
                        results[i] = StudentResult(
                            status="failed",
                            reason=f"its Dask worker died while training it, {self.retries + 1} times ({error})",
                        )
                    except CancelledError as error:  # the teacher or data it needed was lost with a worker
                        lost.append(i)
                        results[i] = StudentResult(
                            status="failed",
                            reason=f"its Dask worker died while training it, and so did every copy of the teacher "
                                   f"and data it needed, {resends + 1} times ({type(error).__name__}: {error})",
                        )
                    except (OSError, TimeoutError):
                        raise
                    except Exception as error:  # noqa: BLE001 - the task itself failed: this student only
                        results[i] = StudentResult(status="failed", reason=f"{type(error).__name__}: {error}")
                if not lost or resends == self.retries:
                    break
                # the scheduler forgot the teacher or data with a dead worker: send them again, retry those
                resends += 1
                logger.warning("Dask backend: %d student(s) lost the teacher and data with a dead worker; sending "
                               "them again (%d of %d)", len(lost), resends, self.retries)
                self._ensure_scattered(force=True)
                pending = lost
        except (OSError, TimeoutError) as error:
            raise ClusterLostError(
                f"the Dask scheduler at {self.address} went away ({type(error).__name__}: {error}); the "
                "evaluated architectures are in the journal: resume the run directory (resume=<run dir>)."
            ) from error
        finally:
            for future in futures:
                future.cancel()
        return results

    def finetune(self, student: nn.Module, **options: Any) -> TrainResult:
        r"""Fully train ``student`` in this process
        (:func:`~botorch_archsearch.evaluation.finetune`)."""
        return finetune(student, self.data_cpu, **options)

    def _ensure_scattered(self, force: bool = False) -> None:
        """Send the teacher and the dataset again if every worker holding them died (or if
        ``force``: a task found them forgotten)."""
        if force or self._teacher.status != "finished" or self._data.status != "finished":
            logger.warning("Dask backend: the workers holding the teacher and data died; sending them again")
            self._teacher = self.client.scatter(_Shipped(self.teacher_module), broadcast=True, hash=False)
            self._data = self.client.scatter(self.data_cpu, broadcast=True, hash=False)

    def close(self) -> None:
        r"""Disconnect, and stop the local cluster if this backend started one."""
        try:
            self.client.close(timeout=5)
        finally:
            if self.cluster is not None:
                self.cluster.close()


__all__ = ["BACKENDS", "ClusterLostError", "DaskBackend", "ISOLATIONS", "LocalBackend"]
