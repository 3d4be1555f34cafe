r"""Shared by the per-teacher examples: the paper's settings (section 4.1) and a smoke version.

Not an example itself; each ``examples/<teacher>.py`` calls :func:`main` with its teacher.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from botorch_archsearch.evaluation import load_dataset, synthetic_dataset
from botorch_archsearch.search import (
    AcquisitionConfig,
    CompressConfig,
    DatasetConfig,
    EvaluationConfig,
    FinalConfig,
    KernelConfig,
    SearchSettings,
    TeacherConfig,
    compress,
)


def paper_config(teacher: str, dataset: str, device: str) -> CompressConfig:
    """The paper's search: ESNAC and random search, 20 steps x 8 kernels = 160 evaluations each,
    10 epochs of distillation, the best 4 fully trained for 300 epochs; the teacher at full width."""
    return CompressConfig(
        teacher=TeacherConfig(name=teacher, width=1.0, epochs=200, lr=0.1),
        dataset=DatasetConfig(name=dataset),
        search=SearchSettings(method="both", steps=20, num_kernels=8),
        acquisition=AcquisitionConfig(num_candidates=1000),
        evaluation=EvaluationConfig(epochs=10, device=device),
        final=FinalConfig(top_k=4, epochs=300, step_size=100),
    )


def smoke_config(teacher: str) -> CompressConfig:
    """Seconds on a CPU: a 1/8-width teacher, 2 steps x 2 kernels, a few batches of training, in the
    search's own process (no worker process to start), contiguous (no numerics guard probe)."""
    return CompressConfig(
        teacher=TeacherConfig(name=teacher, width=0.125, epochs=1, max_batches=2),
        dataset=DatasetConfig(name="synthetic"),
        search=SearchSettings(method="both", steps=2, num_kernels=2),
        kernel=KernelConfig(hidden_size=16, num_layers=1, max_steps=3),
        acquisition=AcquisitionConfig(num_candidates=40),
        evaluation=EvaluationConfig(epochs=1, max_batches=2, batch_size=32, isolation="none",
                                    channels_last=False),
        final=FinalConfig(top_k=1, epochs=1, max_batches=1, step_size=1),
        progress=False,
    )


def main(teacher: str, description: str) -> None:
    """Parse the command line and run the search for ``teacher``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dataset", default="cifar10", choices=("cifar10", "cifar100"))
    parser.add_argument("--data-root", default=None, help="folder holding (or to receive) the CIFAR files")
    parser.add_argument("--download", action="store_true", help="download CIFAR through torchvision")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--run-dir", default=None, help=f"default: runs/{teacher}-<dataset>[-smoke]")
    parser.add_argument("--smoke", action="store_true", help="a tiny version on synthetic data, in seconds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.smoke:
        config = smoke_config(teacher)
        data = synthetic_dataset(num_classes=10, in_channels=3, image_size=32, num_train=256, num_val=64,
                                 num_test=64)
    else:
        config = paper_config(teacher, args.dataset, args.device)
        data = load_dataset(args.dataset, args.data_root, download=args.download)
    run_dir = Path(args.run_dir or f"runs/{teacher}-{'smoke' if args.smoke else args.dataset}")
    result = compress(None, data, config, run_dir=run_dir, resume=(run_dir / "journal.jsonl").exists())
    print(result.summary)
    print(f"run directory: {run_dir} (report.md, best/, journal.jsonl)")
