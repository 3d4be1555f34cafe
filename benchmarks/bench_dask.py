r"""Overhead of the Dask evaluation backend: one search step of K students on a 2-worker
``LocalCluster`` (one thread each, on 127.0.0.1) against the local backend, in the same run.

The local backend distils the K students in lock-step in this process (2 students at a time in
threads, one teacher forward per batch); the Dask backend sends one task per student (each worker
process trains its students one after another and runs the teacher for each). The figure that
matters is the overhead Dask adds: the step's wall time minus the busiest worker's compute time
(from Dask's task stream), i.e. scheduling, shipping the students' weights and results, and
waiting. Sending the teacher and the dataset happens once per search and is reported apart.

Usage: ``OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_dask.py [--students 4] [--batches 300]
[--dataset fashion_mnist]``. Timings are never asserted.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=4)
    parser.add_argument("--batches", type=int, default=300, help="training batches per student (>= 10 s each)")
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--width", type=float, default=0.125)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 2)))

    from distributed import get_task_stream

    from botorch_archsearch.evaluation import load_dataset
    from botorch_archsearch.graph import trace
    from botorch_archsearch.models import get_teacher
    from botorch_archsearch.search.backends import DaskBackend, LocalBackend
    from botorch_archsearch.space import SearchSpace

    data = load_dataset(args.dataset)
    torch.manual_seed(0)
    teacher = get_teacher("resnet18", num_classes=data.num_classes, in_channels=data.in_channels,
                          width=args.width).eval()
    space = SearchSpace(trace(teacher, torch.zeros(1, data.in_channels, data.image_size, data.image_size)))
    students = [space.student(e) for e in space.sample(args.students, generator=torch.Generator().manual_seed(0))]
    options = {"epochs": 1, "max_batches": args.batches, "batch_size": 128}
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"step: {args.students} students of a ResNet-18 (width {args.width}) on {data.name}, {args.batches} "
          "batches of 128 each + validation", flush=True)

    local = LocalBackend(teacher, data, {**options, "progress": False})
    start = time.perf_counter()
    local_results = local.evaluate(students, seed=0)
    local_s = time.perf_counter() - start
    print(f"local backend (lock-step, 2 threads): {local_s:.1f} s", flush=True)

    start = time.perf_counter()
    backend = DaskBackend(teacher, data, options, workers=2, threads_per_worker=1)
    setup_s = time.perf_counter() - start
    try:
        with get_task_stream(backend.client) as stream:
            start = time.perf_counter()
            dask_results = backend.evaluate(students, seed=0)
            dask_s = time.perf_counter() - start
        busy: dict[str, float] = defaultdict(float)
        computes = []
        for task in stream.data:
            for part in task["startstops"]:
                if part["action"] == "compute":
                    busy[task["worker"]] += part["stop"] - part["start"]
                    computes.append(part["stop"] - part["start"])
    finally:
        backend.close()
    busiest = max(busy.values())
    overhead = dask_s - busiest
    print(f"Dask backend (2 workers x 1 thread): cluster start + teacher and data sent once: {setup_s:.1f} s")
    print(f"Dask backend step: {dask_s:.1f} s; tasks computed {', '.join(f'{c:.1f}' for c in computes)} s; busiest "
          f"worker {busiest:.1f} s; overhead {overhead:.2f} s = {100 * overhead / dask_s:.1f}% of the step "
          "(target < 5% for students of >= 10 s)")
    print(f"step wall time, local / Dask: {local_s / dask_s:.2f}")
    same = all(a.history == b.history for a, b in zip(local_results, dask_results))
    print(f"same validation accuracies on both backends: {same}")


if __name__ == "__main__":
    main()
