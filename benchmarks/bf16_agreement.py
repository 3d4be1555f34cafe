r"""Does bf16 autocast change what the search sees? Distillation accuracies in float32 and bf16.

Distils the same random students of a trained tiny ResNet-18 on Fashion-MNIST (the
``search_quality`` evaluator: 2 epochs x 30 batches of 128) four times: float32 and bf16
autocast, each with two batch orders. Prints the mean absolute difference and the Spearman rank
correlation of the validation accuracies between precisions (same batches) and between batch
orders (same precision): the change bf16 makes, next to the noise the search lives with anyway.

Usage: ``.venv/bin/python benchmarks/bf16_agreement.py [--students 16] [--dataset fashion_mnist]``.
The teacher is trained once (3 epochs, seed 0) and cached like the search's.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.stats import spearmanr

from botorch_archsearch.evaluation.data import load_dataset
from botorch_archsearch.evaluation.distill import evaluate_students
from botorch_archsearch.evaluation.teachers import trained_teacher
from botorch_archsearch.graph import build_student, trace
from botorch_archsearch.space import SearchSpace
from botorch_archsearch.utils.precision import native_bf16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=16)
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--seed", type=int, default=1, help="seed of the students' edits")
    args = parser.parse_args()
    data = load_dataset(args.dataset, seed=0)
    teacher = trained_teacher("resnet18", data, width=0.125, epochs=3, lr=0.05, batch_size=128, seed=0).model
    space = SearchSpace(trace(teacher, torch.zeros(1, data.in_channels, data.image_size, data.image_size)))
    students = [space.student(e) for e in space.sample(args.students, generator=torch.Generator().manual_seed(args.seed))]
    print(f"native bf16 on this CPU: {native_bf16('cpu')}; {args.students} students", flush=True)
    accuracies = {}
    for bf16 in (False, True):
        for order in (0, 1):
            start = time.perf_counter()
            results = evaluate_students(teacher, [build_student(s, teacher) for s in students], data, epochs=2,
                                        max_batches=30, bf16=bf16, seed=order, progress=False)
            accuracies[bf16, order] = np.array([r.accuracy for r in results])
            print(f"{'bf16   ' if bf16 else 'float32'} batch order {order}: {time.perf_counter() - start:.0f} s; "
                  + " ".join(f"{a:.3f}" for a in accuracies[bf16, order]), flush=True)

    def compare(label: str, a: np.ndarray, b: np.ndarray) -> None:
        print(f"{label}: mean |difference| {np.abs(a - b).mean():.4f}, max {np.abs(a - b).max():.4f}, "
              f"Spearman {spearmanr(a, b)[0]:.3f}")

    print()
    for order in (0, 1):
        compare(f"float32 vs bf16, batch order {order}", accuracies[False, order], accuracies[True, order])
    compare("batch order 0 vs 1, float32", accuracies[False, 0], accuracies[False, 1])
    compare("batch order 0 vs 1, bf16   ", accuracies[True, 0], accuracies[True, 1])


if __name__ == "__main__":
    main()
