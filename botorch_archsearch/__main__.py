r"""``python -m botorch_archsearch`` (and the ``botorch-archsearch`` command): the Hydra application.

Hydra composes ``conf/`` (teacher, dataset, search, experiment presets; any key overridable on
the command line) over the schema, the dataclasses of :mod:`botorch_archsearch.search.config`
(:class:`AppConfig` adds ``resume``), and this module calls the library:
:func:`botorch_archsearch.search.compress` with the composed
:class:`~botorch_archsearch.search.CompressConfig`, writing the run directory in Hydra's output
directory. ``resume=<run dir>`` continues a killed search there, with its saved config; an override
given with it must be one of the settings that may change on resume
(:data:`~botorch_archsearch.search.config.RESUMABLE_KEYS`: ``search.steps``, ``evaluation.backend``,
``evaluation.dask.*``, ``evaluation.workers``, ``evaluation.isolation``, ``progress``), any other is
refused. A value of the wrong type (``search.removal=maybe``) or an unknown key is one line and exit
status 2, as is any other wrong setting.

Examples::

    python -m botorch_archsearch                                   # the embedded demo (digits)
    python -m botorch_archsearch teacher=tiny_vgg19 dataset=fashion_mnist dataset.image_size=32
    python -m botorch_archsearch teacher=torchvision teacher.name=mobilenet_v2 dataset=cifar10
    python -m botorch_archsearch teacher=module teacher.module=mynets:make_net   # mynets.py in the current directory
    python -m botorch_archsearch -m search.num_kernels=1,2,4,8,16 seed=0,1,2
    python -m botorch_archsearch +experiment=table1_resnet18_cifar10 dataset.download=true
    python -m botorch_archsearch resume=outputs/2026-11-22/10-00-00
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from botorch_archsearch.exceptions import ArchSearchError, ArchSearchException
from botorch_archsearch.search.config import (
    CONFIG_NAME,
    RESUMABLE_KEYS,
    SCHEMA_NAME,
    CompressConfig,
    check_config,
    is_resumable,
    read_saved_config,
    register_configs,
    upgrade_saved_config,
)
from botorch_archsearch.search.loop import compress
from botorch_archsearch.utils.files import make_dir

logger = logging.getLogger("botorch_archsearch")


@dataclass
class AppConfig(CompressConfig):
    r"""The app's config: a search's (:class:`~botorch_archsearch.search.CompressConfig`) and where
    to resume one.

    Args:
        resume: A run directory to continue, with its saved ``config.json``.
    """

    resume: str | None = None


register_configs(AppConfig, SCHEMA_NAME)


def _config_dir() -> str:
    """``conf/``: inside the installed package (a wheel ships it as ``botorch_archsearch/conf``), else
    beside the package (a checkout). Absolute, so the ``botorch-archsearch`` command finds it too."""
    package = Path(__file__).resolve().parent
    installed, checkout = package / "conf", package.parent / "conf"
    return str(installed if (installed / "config.yaml").is_file() else checkout)


@hydra.main(version_base="1.3", config_path=_config_dir(), config_name="config")
def app(cfg: DictConfig) -> float | None:
    r"""Run one search from a composed config; returns the best reward (for sweepers)."""
    from hydra.core.hydra_config import HydraConfig

    values = OmegaConf.to_container(cfg, resolve=True)
    resume = values.pop("resume", None)
    run_dir: Path | None = None
    _import_from(hydra.utils.get_original_cwd())
    try:
        if resume:
            run_dir = Path(hydra.utils.to_absolute_path(str(resume)))
            if not (run_dir / CONFIG_NAME).is_file():
                raise ArchSearchError(
                    f"resume={resume!r}: not a run directory (no {CONFIG_NAME}); give the directory of the search "
                    "to continue, e.g. resume=outputs/<date>/<time>."
                )
            saved = upgrade_saved_config(read_saved_config(run_dir))
            _apply_resume_overrides(saved, values, HydraConfig.get().overrides.task)
            config = CompressConfig.from_dict(saved)
            logger.info("resuming the search in %s with its saved config", run_dir)
        else:
            config = CompressConfig.from_dict(values)
            run_dir = Path(HydraConfig.get().runtime.output_dir)
        check_config(config)
        result = compress(config=config, run_dir=run_dir, resume=bool(resume))
    except ArchSearchException as error:  # bad input, a run directory in use, a lost cluster: one line
        print(f"botorch-archsearch: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:  # Ctrl-C: the journal holds every finished evaluation
        if run_dir is not None and (run_dir / CONFIG_NAME).is_file():
            resume_arg = shlex.quote(f"resume={run_dir}")
            print(f"interrupted; resume with: python -m botorch_archsearch {resume_arg}", file=sys.stderr)
        else:
            print("interrupted before the search started; nothing to resume", file=sys.stderr)
        # Under `python -m`, CPython dies by SIGINT at exit instead of this exit status if the interrupt
        # passed through code run by exec/eval of a string (even if caught); running one such string resets it.
        exec("pass")  # noqa: S102
        raise SystemExit(130) from None
    best = [record.reward for record in result.best.values()]
    return max(best) if best else None


def _import_from(directory: str) -> None:
    """Make the directory the app was started from importable (``teacher.module=mynets:make_net``
    finds ``mynets.py`` there), as ``python -m`` does and the ``botorch-archsearch`` command does not."""
    if directory not in sys.path:
        sys.path.insert(0, directory)


def _apply_resume_overrides(saved: dict, values: dict, overrides: list[str]) -> None:
    """Set in ``saved`` (the run's config) the command line's overrides of the settings that may
    change on resume, with their composed ``values``; any other override is an error, never ignored."""
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~").split("@", 1)[0]
        if key == "resume" or key.split(".", 1)[0] == "hydra" or key.startswith("hydra/"):
            continue
        if not is_resumable(key):
            raise ArchSearchError(
                f"resume: {override!r} cannot be applied: {key} is part of the run's identity and cannot change "
                f"when it is resumed; only {', '.join(RESUMABLE_KEYS)} (and the keys under them) may. Start a new "
                "run to change it."
            )
        *parents, last = key.split(".")
        source, target = values, saved
        for name in parents:
            source = source.get(name) if isinstance(source, dict) else None
            target = target.setdefault(name, {})
        if isinstance(source, dict) and last in source:
            target[last] = json.loads(json.dumps(source[last]))


class RunDirectoryCheck(Callback):
    r"""Hydra callback (``hydra.callbacks`` in ``conf/config.yaml``): a run or sweep directory that
    cannot be created is one error line and exit 2, before Hydra fails on it with a traceback."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _make_dir_or_exit(config.hydra.run.dir, "run directory (hydra.run.dir)")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _make_dir_or_exit(config.hydra.sweep.dir, "sweep directory (hydra.sweep.dir)")


def _make_dir_or_exit(path: str, what: str) -> None:
    try:
        make_dir(path, what)
    except ArchSearchError as error:  # Hydra's callbacks turn exceptions into warnings: exit here
        print(f"botorch-archsearch: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def _check_overrides(args: list[str]) -> None:
    r"""Check the command line's values against the schema before Hydra composes the config (Hydra
    would refuse a wrong type or an unknown key too, but in several lines with exit status 1).

    Raises:
        ArchSearchError: Naming the key, the value and what the key accepts.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        from hydra._internal.utils import get_args_parser  # the parser hydra.main uses

        with contextlib.redirect_stderr(io.StringIO()):
            parsed = get_args_parser().parse_args(args)
        overrides = OverridesParser.create().parse_overrides(parsed.overrides)
    except (ImportError, HydraException, SystemExit):  # a wrong argument is Hydra's to report
        return
    groups = {path.name for path in Path(_config_dir()).iterdir() if path.is_dir()}
    for override in overrides:
        key = override.key_or_group
        if override.package is not None or "/" in key or key in groups or key.split(".", 1)[0] == "hydra":
            continue
        if override.is_delete():  # the schema gives every key a value
            raise ArchSearchError(
                f"{override.input_line!r}: a key of the config cannot be removed (every key has a value); set "
                f"it instead: {key}=<value>."
            )
        try:
            values = list(override.sweep_iterator()) if override.is_sweep_override() else [override.value()]
        except HydraException:  # an interval sweep (for optimizing sweepers): checked when composed
            continue
        for value in values:
            if isinstance(value, str) and "${" in value:  # an interpolation: checked when composed
                continue
            nested: Any = value
            for name in reversed(key.split(".")):
                nested = {name: nested}
            AppConfig.from_dict(nested)


def main() -> None:
    r"""Console entry point (``botorch-archsearch``)."""
    try:
        _check_overrides(sys.argv[1:])
    except ArchSearchError as error:
        print(f"botorch-archsearch: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    app()


if __name__ == "__main__":
    main()
