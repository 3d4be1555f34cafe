r"""``python -m botorch_archsearch`` (and the ``botorch-archsearch`` command): the Hydra application.

Hydra composes ``conf/`` (teacher, dataset, search, experiment presets; any key overridable on
the command line) and this module calls the library: :func:`botorch_archsearch.search.compress`
with the composed :class:`~botorch_archsearch.search.CompressConfig`, writing the run directory
in Hydra's output directory. ``resume=<run dir>`` continues a killed search there, with its saved config; only the settings
of where and how fast it runs (``evaluation.backend``, ``evaluation.dask.*``,
``evaluation.workers``, ``progress``) are taken from the command line.

Examples::

    python -m botorch_archsearch                                   # the embedded demo (digits)
    python -m botorch_archsearch teacher=tiny_vgg19 dataset=fashion_mnist dataset.image_size=32
    python -m botorch_archsearch -m search.num_kernels=1,2,4,8,16 seed=0,1,2
    python -m botorch_archsearch +experiment=table1_resnet18_cifar10 dataset.download=true
    python -m botorch_archsearch resume=outputs/2026-11-22/10-00-00
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.search.config import CompressConfig, check_config, upgrade_saved_config
from botorch_archsearch.search.loop import CONFIG_NAME, EXECUTION_KEYS, compress

logger = logging.getLogger("botorch_archsearch")


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def app(cfg: DictConfig) -> float | None:
    r"""Run one search from a composed config; returns the best reward (for sweepers)."""
    from hydra.core.hydra_config import HydraConfig

    values = OmegaConf.to_container(cfg, resolve=True)
    resume = values.pop("resume", None)
    try:
        if resume:
            run_dir = Path(hydra.utils.to_absolute_path(str(resume)))
            if not (run_dir / CONFIG_NAME).is_file():
                raise ArchSearchError(
                    f"resume={resume!r}: not a run directory (no {CONFIG_NAME}); give the directory of the search "
                    "to continue, e.g. resume=outputs/<date>/<time>."
                )
            saved = upgrade_saved_config(json.loads((run_dir / CONFIG_NAME).read_text()))
            for path in EXECUTION_KEYS:  # where and how fast it runs may change on resume
                source, target = values, saved
                for key in path[:-1]:
                    source, target = source.get(key, {}), target.setdefault(key, {})
                if path[-1] in source:
                    target[path[-1]] = source[path[-1]]
            config = CompressConfig.from_dict(saved)
            logger.info("resuming the search in %s with its saved config", run_dir)
        else:
            config = CompressConfig.from_dict(values)
            run_dir = Path(HydraConfig.get().runtime.output_dir)
        check_config(config)
        result = compress(config=config, run_dir=run_dir, resume=bool(resume))
    except ArchSearchError as error:
        print(f"botorch-archsearch: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    best = [record["reward"] for record in result.best.values()]
    return max(best) if best else None


def main() -> None:
    r"""Console entry point (``botorch-archsearch``)."""
    app()


if __name__ == "__main__":
    main()
