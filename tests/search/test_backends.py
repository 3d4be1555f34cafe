r"""Tests of botorch_archsearch/search/backends.py: the Dask backend on a LocalCluster on
127.0.0.1 (started and stopped by the tests), against the local backend."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import threading
import time

import dask
import psutil
import pytest
import torch
from distributed import Client, LocalCluster

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph import trace
from botorch_archsearch.search import EvaluationConfig, compress, read_journal
from botorch_archsearch.search.backends import ClusterLostError, DaskBackend, LocalBackend
from botorch_archsearch.search.config import DaskConfig
from botorch_archsearch.search.records import TIMING_KEYS
from botorch_archsearch.space import SearchSpace

# Every test starts a Dask cluster or the local backend's worker process.
pytestmark = pytest.mark.slow

# The scheduler's health routes on an ephemeral loopback port (as the backend's own cluster does), not 8787.
LOOPBACK_HTTP = {"dashboard": False, "dashboard_address": "127.0.0.1:0"}


@pytest.fixture(autouse=True, scope="module")
def no_process_left_behind():
    """Every cluster these tests start is stopped: no worker or nanny process outlives them."""
    yield
    deadline = time.monotonic() + 30
    while True:
        left = [p for p in psutil.Process().children(recursive=True)
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE
                and "resource_tracker" not in " ".join(p.cmdline())
                and "_numerics_probe" not in " ".join(p.cmdline())]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not left, f"processes left behind: {[' '.join(p.cmdline())[:120] for p in left]}"


def _strip(records):
    """Records (typed, or journal lines) as JSON values without their wall-clock times."""
    return [{k: v for k, v in (r if isinstance(r, dict) else r.to_dict()).items() if k not in TIMING_KEYS}
            for r in records]


def _dask_config(config, **dask_options):
    evaluation = dataclasses.replace(config.evaluation, backend="dask", dask=DaskConfig(**dask_options))
    return dataclasses.replace(config, evaluation=evaluation)


@pytest.fixture
def cluster():
    """A 2-worker cluster on loopback that gives up on a task after 1 worker death."""
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, scheduler_kwargs=LOOPBACK_HTTP)
    try:
        yield cluster
    finally:
        cluster.close()


def test_dask_backend_gives_the_records_of_the_local_backend(
        tmp_path, small_config, search_data, search_teacher):
    config = small_config()
    local = compress(search_teacher, search_data, config, run_dir=tmp_path / "local")
    remote = compress(search_teacher, search_data, _dask_config(config, workers=2), run_dir=tmp_path / "dask")
    assert _strip(remote.records) == _strip(local.records)
    assert [f.test_accuracy for f in remote.final] == [f.test_accuracy for f in local.final]


def test_the_search_s_own_cluster_keeps_its_http_server_off_8787_and_on_loopback(
        search_data, search_teacher, recwarn):
    """Without the dashboard, the scheduler's health routes take an ephemeral loopback port: a second
    cluster (another search, a test next to it) does not warn that 8787 is in use."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.bind(("127.0.0.1", 8787))
        holder.listen(1)
    except OSError:  # someone else holds it: the case this test is about
        pass
    backend = DaskBackend(search_teacher.model, search_data, {"epochs": 1, "max_batches": 1}, workers=1, retries=0)
    try:
        http = backend.cluster.scheduler.http_server
        assert http.address == "127.0.0.1" and http.port != 8787
        assert backend.cluster.scheduler.address.startswith("tcp://127.0.0.1:")
        assert not [str(w.message) for w in recwarn if "already in use" in str(w.message)]
    finally:
        backend.close()
        holder.close()


def test_a_torchvision_teacher_is_sent_to_the_dask_workers_and_the_worker_process(cluster, search_data):
    """Their processes unpickle torchvision's classes, where a plain ``import torchvision`` fails."""
    from botorch_archsearch.models import get_torchvision_model

    data = search_data
    torch.manual_seed(0)
    model = get_torchvision_model("shufflenet_v2_x0_5", num_classes=4).eval()
    space = SearchSpace(trace(model, torch.zeros(1, 3, 16, 16)))
    students = [space.student(space.sample(1, generator=torch.Generator().manual_seed(1))[0])]
    options = {"epochs": 1, "max_batches": 1, "batch_size": 16, "latency_batch": 2}
    remote = DaskBackend(model, data, options, address=cluster.scheduler_address, retries=0)
    try:
        (on_dask,) = remote.evaluate(students, seed=0)
    finally:
        remote.close()
    local = LocalBackend(model, data, {**options, "progress": False}, isolation="process")
    try:
        (in_process,) = local.evaluate(students, seed=0)
    finally:
        local.close()
    assert on_dask.status == in_process.status == "ok", (on_dask.reason, in_process.reason)
    assert on_dask.accuracy == in_process.accuracy
    for result in (on_dask, in_process):  # measured where it was trained: a worker of its own, named
        assert set(result.latency["ms"]) == {"1", "2"} and result.latency["device"].startswith("cpu: ")
        assert result.latency["host"] and all(ms > 0 for ms in result.latency["ms"].values())


def _worker_pids(address):
    with Client(address) as client:
        return client.run(os.getpid)


def _kill_a_busy_worker(address, stop):
    """Kill (SIGKILL) the process of a worker while it trains a student."""
    with Client(address) as client:
        while not stop.is_set():
            busy = [w for w, tasks in client.processing().items() if tasks]
            if busy:
                pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                return pid
            time.sleep(0.02)
    return None


def test_a_killed_worker_s_student_is_retried_and_nothing_is_lost(
        cluster, tmp_path, small_config, search_data, search_teacher):
    config = dataclasses.replace(small_config(steps=2), evaluation=EvaluationConfig(
        epochs=2, max_batches=6, batch_size=32, channels_last=False))
    expected = compress(search_teacher, search_data, config, run_dir=tmp_path / "local")
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=lambda: killed.append(_kill_a_busy_worker(cluster.scheduler_address, stop)))
    killer.start()
    try:
        result = compress(search_teacher, search_data,
                          _dask_config(config, address=cluster.scheduler_address), run_dir=tmp_path / "dask")
    finally:
        stop.set()
        killer.join(timeout=60)
    assert killed and killed[0] is not None, "no worker was busy long enough to be killed"
    records = read_journal(tmp_path / "dask" / "journal.jsonl").records
    assert len(records) == 4 and all(r["status"] == "ok" for r in records), [
        (r["index"], r["status"], r["reason"]) for r in records]
    # the retried student trained as it would have (which keys differ, if any, for a diagnosis)
    assert _strip(records) == _strip(expected.records), [
        (i, sorted(k for k in a if a[k] != b.get(k))) for i, (a, b) in
        enumerate(zip(_strip(records), _strip(expected.records))) if a != b]
    assert _strip(result.records) == _strip(records)


def test_students_whose_teacher_and_data_were_forgotten_get_them_again_and_train(
        cluster, monkeypatch, search_data, search_teacher):
    """A task the scheduler cancels because the teacher or data it needs was forgotten with a dead
    worker ('already forgotten', 'lost dependencies') is sent again with fresh copies of them."""
    options = {"epochs": 1, "batch_size": 32, "max_batches": 2}
    backend = DaskBackend(search_teacher.model, search_data, options, address=cluster.scheduler_address, retries=1)
    space = SearchSpace(trace(search_teacher.model, torch.zeros(1, 3, 16, 16)))
    students = [space.student(e) for e in space.sample(2, generator=torch.Generator().manual_seed(3))]
    try:
        expected = backend.evaluate(students, seed=0)
        submitted, real = [], backend.client.submit

        def submit(*args, **kwargs):
            future = real(*args, **kwargs)
            submitted.append(future)
            if len(submitted) == 1:
                future.cancel()  # what the scheduler does to a task whose dependency it forgot
            return future

        monkeypatch.setattr(backend.client, "submit", submit)
        teacher_before = backend._teacher.key
        results = backend.evaluate(students, seed=0)
    finally:
        backend.close()
    assert len(submitted) == 3  # two students, the cancelled one once more
    assert backend._teacher.key != teacher_before  # sent again
    assert [r.status for r in results] == ["ok", "ok"], [r.reason for r in results]
    assert [r.accuracy for r in results] == [r.accuracy for r in expected]


def test_a_student_whose_worker_dies_past_the_retries_is_recorded_as_failed(search_data, search_teacher):
    """allowed-failures=0: the first worker death gives up on the student (recorded, not raised)."""
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, scheduler_kwargs=LOOPBACK_HTTP)
    backend = DaskBackend(search_teacher.model, search_data, {"epochs": 500, "batch_size": 32},
                          address=cluster.scheduler_address, retries=0)
    space = SearchSpace(trace(search_teacher.model, torch.zeros(1, 3, 16, 16)))
    students = [space.student(space.sample(1, generator=torch.Generator().manual_seed(1))[0])]
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=lambda: killed.append(_kill_a_busy_worker(cluster.scheduler_address, stop)))
    killer.start()
    try:
        (result,) = backend.evaluate(students, seed=0)
    finally:
        stop.set()
        killer.join(timeout=60)
        backend.close()
        cluster.close()
    assert killed and killed[0] is not None
    assert result.status == "failed" and "worker died" in result.reason


def test_a_lost_scheduler_stops_the_search_and_it_resumes_locally(
        tmp_path, small_config, search_data, search_teacher):
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, scheduler_kwargs=LOOPBACK_HTTP)
    config = small_config(steps=3)
    done = threading.Event()

    def close_after_first_step():
        journal = tmp_path / "run" / "journal.jsonl"
        while not done.is_set():
            if journal.exists() and len(journal.read_text().splitlines()) >= 2:
                cluster.close()
                return
            time.sleep(0.05)

    closer = threading.Thread(target=close_after_first_step)
    closer.start()
    try:
        with pytest.raises(ClusterLostError, match="resume the run directory"), \
                dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
            compress(search_teacher, search_data, _dask_config(config, address=cluster.scheduler_address),
                     run_dir=tmp_path / "run")
    finally:
        done.set()
        closer.join(timeout=60)
        cluster.close()
    kept = read_journal(tmp_path / "run" / "journal.jsonl").records
    assert 2 <= len(kept) < 6
    # the local backend
    resumed = compress(search_teacher, search_data, config, run_dir=tmp_path / "run", resume=True)
    full = compress(search_teacher, search_data, config)
    assert _strip(resumed.records) == _strip(full.records)


def test_local_backend_is_evaluate_students(search_data, search_teacher):
    backend = LocalBackend(search_teacher.model, search_data,
                           {"epochs": 1, "max_batches": 1, "progress": False})
    space = SearchSpace(trace(search_teacher.model, torch.zeros(1, 3, 16, 16)))
    students = [space.student(e) for e in space.sample(2, generator=torch.Generator().manual_seed(0))]
    results = backend.evaluate(students, seed=3)
    assert len(results) == 2 and all(r.ok for r in results)


def test_evaluation_channels_last_false_trains_without_asking_the_numerics_guard(
        monkeypatch, tmp_path, small_config, search_data, search_teacher):
    """``evaluation.channels_last=false``: no probe process is started and no convolution checked
    (the students train in the contiguous layout); the default asks the guard."""
    from botorch_archsearch.evaluation import numerics

    asked = []

    class Probe:  # stands in for the probe process: records what the guard asks, fails everything
        def send(self, request):  # (passing would train channels-last on kernels that can be wrong here)
            asked.append(request)

        def ask(self, request):
            asked.append(request)
            return numerics.ConvCheck(False, float("inf"), 0.0, "the test's probe")

    monkeypatch.setattr(numerics, "_probe", Probe)
    monkeypatch.setattr(numerics, "_cache", {})  # this process's verdicts, restored afterwards
    monkeypatch.setattr(numerics, "_families", {})
    formats = []
    original = numerics.training_memory_format
    monkeypatch.setattr("botorch_archsearch.evaluation.distill.training_memory_format",
                        lambda model, *args, **kwargs: formats.append(original(model, *args, **kwargs)) or formats[-1])
    config = small_config(steps=1)
    assert config.evaluation.channels_last is False
    result = compress(search_teacher, search_data, config, run_dir=tmp_path / "off")
    assert result.records and all(r.status == "ok" for r in result.records)
    assert asked == [] and formats and set(formats) == {torch.contiguous_format}
    on = dataclasses.replace(config, evaluation=dataclasses.replace(config.evaluation, channels_last=True))
    compress(search_teacher, search_data, on, run_dir=tmp_path / "on")
    assert any("family" in request for request in asked)  # the default asks the guard


# ---------------------------------------------------------------- the local backend's worker process


def test_the_worker_process_gives_the_records_of_the_search_process(
        tmp_path, small_config, search_data, search_teacher):
    config = small_config(steps=2)
    inside = compress(search_teacher, search_data, config, run_dir=tmp_path / "inside")
    isolated = compress(search_teacher, search_data, small_config(isolation="process", steps=2),
                        run_dir=tmp_path / "process")
    assert _strip(isolated.records) == _strip(inside.records)
    assert _strip(isolated.final) == _strip(inside.final)
    for f in isolated.final:  # the fully trained weights came back from the worker
        a = torch.load(tmp_path / "inside" / f.path / "state_dict.pt", weights_only=True)
        b = torch.load(tmp_path / "process" / f.path / "state_dict.pt", weights_only=True)
        for k in a:
            torch.testing.assert_close(a[k], b[k], msg=k)


def test_the_cpu_default_is_the_worker_process_and_cuda_s_is_none(search_data, search_teacher):
    teacher, data = search_teacher.model, search_data
    backend = LocalBackend(teacher, data, {"device": "cpu"})
    worker = backend._worker.process
    try:
        assert backend.isolation == "process" and worker.is_alive()
    finally:
        backend.close()
    assert not worker.is_alive()  # stopped with the backend
    assert LocalBackend(teacher, data, {"device": "cuda"}).isolation == "none"  # nothing starts on CUDA


def test_a_student_that_kills_its_process_is_recorded_failed_and_the_search_finishes(
        tmp_path, monkeypatch, small_config, search_data, search_teacher):
    """The second student of a step aborts its process (as a crash in native code would): it is
    recorded as failed with the signal, the step's other students get the results they get in a
    search without it, and the search finishes with its report."""
    from _crash import abort_on_train

    from botorch_archsearch.search import backends

    config = small_config(isolation="process", method="random", steps=2, num_kernels=3)
    expected = compress(search_teacher, search_data, small_config(method="random", steps=2, num_kernels=3),
                        run_dir=tmp_path / "expected")
    built, real = [], backends.build_student

    def build(graph, teacher):
        built.append(graph.key())
        student = real(graph, teacher)
        return abort_on_train(student) if len(built) == 5 else student  # step 2's second student

    monkeypatch.setattr(backends, "build_student", build)
    result = compress(search_teacher, search_data, config, run_dir=tmp_path / "crash")
    records = read_journal(tmp_path / "crash" / "journal.jsonl").records
    assert [r["status"] for r in records] == ["ok"] * 4 + ["failed", "ok"]
    assert "its training process died (signal SIGABRT)" in records[4]["reason"]
    assert records[4]["key"] == built[4] and records[4]["reward"] == 0.0
    same = [i for i in range(6) if i != 4]
    assert [_strip(records)[i] for i in same] == [_strip(expected.records)[i] for i in same], [
        (i, {k: (a[k], b[k]) for k in a if a[k] != b[k] and k not in ("architecture", "encoding")})
        for i, a, b in zip(same, [_strip(records)[i] for i in same], [_strip(expected.records)[i] for i in same])
        if a != b]
    assert (tmp_path / "crash" / "report.md").exists() and result.final and result.final[0].status == "ok"


def test_a_failed_final_training_is_recorded_and_the_next_student_trains(
        tmp_path, monkeypatch, small_config, search_data, search_teacher):
    """One best student's final training kills its process, another's loss becomes NaN: both are
    recorded as failed in final.jsonl with the reason, the other best students are trained, and the
    run ends with its report."""
    from _crash import abort_on_train

    from botorch_archsearch.evaluation import finetune as real_finetune
    from botorch_archsearch.search import backends, loop

    base = small_config(isolation="process", method="random", steps=2, num_kernels=2)
    config = dataclasses.replace(base, final=dataclasses.replace(base.final, top_k=3))
    built, real = [], loop.build_student

    def build(graph, teacher):  # the final trainings' students, built in the search's process
        built.append(graph.key())
        student = real(graph, teacher)
        return abort_on_train(student) if len(built) == 1 else student

    monkeypatch.setattr(loop, "build_student", build)
    result = compress(search_teacher, search_data, config, run_dir=tmp_path / "run")
    final = read_journal(tmp_path / "run" / "final.jsonl").records
    assert [f["status"] for f in final] == ["failed", "ok", "ok"]
    assert final[0]["reason"].startswith("fine-tune: its training process died (signal SIGABRT)")
    assert final[0]["test_accuracy"] is None and final[0]["path"] is None
    assert all((tmp_path / "run" / f["path"] / "state_dict.pt").exists() for f in final[1:])
    assert [f.to_dict() for f in result.final] == final and "failed" in (tmp_path / "run" / "report.md").read_text()

    # in the search's process: a NaN loss
    def nan_once(student, data, **options):
        if not calls:
            calls.append(1)
            raise ArchSearchError("fine-tune: the training loss became nan at epoch 1, batch 1.")
        return real_finetune(student, data, **options)

    calls: list[int] = []
    monkeypatch.setattr(loop, "build_student", real)
    monkeypatch.setattr(backends, "finetune", nan_once)
    inside = dataclasses.replace(config, evaluation=dataclasses.replace(config.evaluation, isolation="none"))
    compress(search_teacher, search_data, inside, run_dir=tmp_path / "nan")
    final = read_journal(tmp_path / "nan" / "final.jsonl").records
    assert [f["status"] for f in final] == ["failed", "ok", "ok"]
    assert final[0]["reason"] == "fine-tune: the training loss became nan at epoch 1, batch 1."
