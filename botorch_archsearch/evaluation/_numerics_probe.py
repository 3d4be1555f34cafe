r"""The numerics guard's probe process (``python -m botorch_archsearch.evaluation._numerics_probe``):
runs convolution checks for :mod:`botorch_archsearch.evaluation.numerics`, so that a kernel that
corrupts memory takes down this process, not the search."""

from botorch_archsearch.evaluation.numerics import serve_probe

__all__: list[str] = []

if __name__ == "__main__":
    serve_probe()
