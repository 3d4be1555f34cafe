r"""Speed and memory of the architecture domain: sample + apply + encode, and student building.

Prints, for ResNet-34 and ShuffleNet (paper-size teachers, 32x32 inputs, 10 classes) and
torchvision's EfficientNet-B0 (squeeze-and-excitation gates, 64x64 inputs, 10 classes; also with
magnitude-ordered channels, the app's default):
- candidates sampled, applied and encoded per second (the BO step scores thousands of them);
- the same with every student's layers materialised, and the ratio (what the table path saves);
- students built per second (with weights inherited from the teacher);
- the size of the encoded ``X`` of 8,000 ResNet-34 candidates and the peak memory of making it.

Usage: ``.venv/bin/python benchmarks/bench_space.py [--candidates 1000] [--builds 20] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import tracemalloc

import torch

from botorch_archsearch.graph import build_student, encode, trace
from botorch_archsearch.models import get_teacher
from botorch_archsearch.space import SearchSpace, channel_importance
from botorch_archsearch.utils import import_torchvision


def _best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_teacher(name: str, candidates: int, builds: int, repeats: int, order: str = "even") -> None:
    if name == "efficientnet_b0":
        teacher = import_torchvision().models.efficientnet_b0(num_classes=10).eval()
        start = time.perf_counter()
        graph = trace(teacher, torch.randn(1, 3, 64, 64))
        print(f"{name}: traced in {time.perf_counter() - start:.2f} s")
    else:
        teacher = get_teacher(name, num_classes=10).eval()
        graph = trace(teacher, torch.randn(1, 3, 32, 32))
    importance = channel_importance(graph, teacher) if order == "magnitude" else None
    space = SearchSpace(graph, channel_importance=importance, channel_order=order)
    L = graph.num_layers

    def table_path() -> None:
        edits = space.sample(candidates, generator=torch.Generator().manual_seed(0))
        encode([space.apply(e) for e in edits], max_layers=L)

    def node_path() -> None:
        edits = space.sample(candidates, generator=torch.Generator().manual_seed(0))
        students = [space.apply(e) for e in edits]
        for s in students:
            s.nodes  # materialise every layer, as a per-layer implementation would
        encode(students, max_layers=L)

    fast = _best_of(repeats, table_path)
    slow = _best_of(repeats, node_path)
    edits = space.sample(builds, generator=torch.Generator().manual_seed(1))
    students = [space.student(e) for e in edits]
    start = time.perf_counter()
    for s in students:
        build_student(s, teacher)
    build_s = (time.perf_counter() - start) / builds
    print(f"{name} (channel order {order}): {L} layers, {len(space.removable)} removable, {space.num_groups} groups, "
          f"{len(space.skip_candidates)} skip candidates")
    print(f"  sample+apply+encode {candidates} candidates: {fast:.3f} s  ({candidates / fast:,.0f}/s)")
    print(f"  same with layers materialised:             {slow:.3f} s  ({candidates / slow:,.0f}/s)"
          f"  -> table path {slow / fast:.1f}x faster")
    print(f"  students built (weights inherited): {1 / build_s:.1f}/s ({build_s * 1000:.0f} ms each); "
          f"encoding a candidate is {build_s / (fast / candidates):,.0f}x cheaper than building it")


def bench_memory(count: int) -> None:
    teacher = get_teacher("resnet34", num_classes=10)
    graph = trace(teacher, torch.randn(1, 3, 32, 32))
    space = SearchSpace(graph)
    tracemalloc.start()
    edits = space.sample(count, generator=torch.Generator().manual_seed(0))
    X = encode((space.apply(e) for e in edits), max_layers=graph.num_layers)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    size = X.element_size() * X.numel()
    print(f"resnet34: X of {count} candidates is {tuple(X.shape)} {X.dtype}: {size / 2**20:.1f} MiB "
          f"(float64: {2 * size / 2**20:.1f} MiB); peak Python/NumPy memory while making it "
          f"{peak / 2**20:.1f} MiB (target < 200 MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--builds", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-candidates", type=int, default=8000)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name in ("resnet34", "shufflenet", "efficientnet_b0"):
        bench_teacher(name, args.candidates, args.builds, args.repeats)
    bench_teacher("efficientnet_b0", args.candidates, args.builds, args.repeats, order="magnitude")
    bench_memory(args.memory_candidates)


if __name__ == "__main__":
    main()
