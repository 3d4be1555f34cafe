r"""Compress ResNet-34 on CIFAR with the paper's settings (ESNAC against random search, Table 1).

The teacher is trained on the dataset first (cached in ~/.cache/botorch_archsearch/teachers),
then each search evaluates 160 students with 10 epochs of distillation and fully trains its best
4 for 300 epochs. Re-running the same command resumes an interrupted search.

Usage:
    python examples/resnet34.py --dataset cifar10 --download --device cuda
    python examples/resnet34.py --smoke      # a tiny version on synthetic data, in seconds
"""

from _paper import main

if __name__ == "__main__":
    main("resnet34", __doc__.splitlines()[0])
