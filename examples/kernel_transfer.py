r"""Kernel transfer (paper section 4.3, Table 3): the kernels learned while compressing one teacher
score the candidates of another, with no kernel training.

First an ESNAC search on ResNet-34 saves its kernels (``<run>/kernels/``); then a search on
ResNet-18 (fewer layers, so its architectures fit the saved kernels' ``max_layers``) proposes
with those kernels: ``KernelConfig(transfer_from=<run>)``, ``kernel.transfer_from=<run>`` on the
command line.

Usage:
    python examples/kernel_transfer.py --source runs/resnet34-cifar10 --dataset cifar10 --device cuda
    python examples/kernel_transfer.py --smoke      # both searches tiny, on synthetic data
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from _paper import paper_config, smoke_config

from botorch_archsearch.evaluation import load_dataset, synthetic_dataset
from botorch_archsearch.search import compress


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=None, help="run directory of a finished ESNAC search (its kernels)")
    parser.add_argument("--teacher", default="resnet18", help="the teacher to compress with the transferred kernels")
    parser.add_argument("--dataset", default="cifar10", choices=("cifar10", "cifar100"))
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--download", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--smoke", action="store_true", help="tiny source and target searches on synthetic data")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.smoke:
        data = synthetic_dataset(num_classes=10, in_channels=3, image_size=32, num_train=256, num_val=64,
                                 num_test=64)
        source = Path("runs/transfer-smoke-source")
        config = dataclasses.replace(smoke_config("resnet34"), search=dataclasses.replace(
            smoke_config("resnet34").search, method="esnac"))
        if not (source / "report.md").exists():
            compress(None, data, config, run_dir=source, resume=(source / "journal.jsonl").exists())
        target_config = smoke_config(args.teacher)
        run_dir = Path("runs/transfer-smoke-target")
    else:
        if args.source is None:
            parser.error("--source is needed (the run directory of an ESNAC search), or use --smoke")
        source = Path(args.source)
        data = load_dataset(args.dataset, args.data_root, download=args.download)
        target_config = paper_config(args.teacher, args.dataset, args.device)
        run_dir = Path(f"runs/{args.teacher}-{args.dataset}-transfer")
    target_config = dataclasses.replace(
        target_config,
        search=dataclasses.replace(target_config.search, method="esnac"),
        kernel=dataclasses.replace(target_config.kernel, transfer_from=str(source)),
    )
    result = compress(None, data, target_config, run_dir=run_dir, resume=(run_dir / "journal.jsonl").exists())
    print(result.summary)
    print(f"kernels from {source}; run directory: {run_dir}")


if __name__ == "__main__":
    main()
