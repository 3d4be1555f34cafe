r"""``python -m botorch_archsearch``: the main job.

Until the search itself lands (kernel, evaluation and search issues), the main job explores the
compression search space of a small teacher: it traces the teacher, samples edits with the
reference sampler, builds every student with inherited weights, runs it forward and prints a
table of the students (layers, parameters, MACs, compression) next to the teacher.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from botorch_archsearch.graph import build_student, count_flops, count_params, encode, trace
from botorch_archsearch.models import TEACHER_NAMES, get_teacher
from botorch_archsearch.space import SearchSpace


def main(argv: list[str] | None = None) -> int:
    """Run the main job; returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog="botorch-archsearch",
        description="Explore the compression search space of a teacher network (ESNAC edits).",
    )
    parser.add_argument("--teacher", default="resnet18", choices=TEACHER_NAMES)
    parser.add_argument("--width", type=float, default=0.25, help="channel width multiplier of the teacher")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--in-channels", type=int, default=1, help="1 for digits / Fashion-MNIST")
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--samples", type=int, default=1000, help="edits to sample and encode")
    parser.add_argument("--build", type=int, default=8, help="students to build and run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    teacher = get_teacher(args.teacher, num_classes=args.num_classes, in_channels=args.in_channels, width=args.width)
    x = torch.randn(2, args.in_channels, args.image_size, args.image_size)
    graph = trace(teacher.eval(), x[:1])
    space = SearchSpace(graph)
    t_params, t_flops = count_params(graph), count_flops(graph)
    print(f"teacher {args.teacher} (width {args.width}): {graph.num_layers} layers, "
          f"{t_params:,} params, {t_flops / 1e6:.1f}M MACs")
    print(f"search space: {len(space.removable)} removable layers, {space.num_groups} channel groups, "
          f"{len(space.skip_candidates)} possible skips")

    start = time.perf_counter()
    edits = space.sample(args.samples, generator=torch.Generator().manual_seed(args.seed))
    X = encode([space.apply(e) for e in edits], max_layers=graph.num_layers)
    print(f"sampled, applied and encoded {args.samples} candidates in {time.perf_counter() - start:.2f} s "
          f"(X: {tuple(X.shape)})")

    print(f"\n{'student':>8} {'layers':>7} {'params':>12} {'ratio':>7} {'MACs(M)':>9} {'forward':>8}")
    print(f"{'teacher':>8} {graph.num_layers:>7} {t_params:>12,} {1.0:>7.2f} {t_flops / 1e6:>9.2f} {'ok':>8}")
    for k, edit in enumerate(edits[: args.build]):
        student_graph = space.apply(edit)
        student = build_student(student_graph, teacher).eval()
        with torch.no_grad():
            y = student(x)
        ok = "ok" if y.shape == (2, args.num_classes) and torch.isfinite(y).all() else "FAILED"
        params = count_params(student_graph)
        print(f"{k:>8} {student_graph.num_layers:>7} {params:>12,} {t_params / params:>7.2f} "
              f"{count_flops(student_graph) / 1e6:>9.2f} {ok:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
