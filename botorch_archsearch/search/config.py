r"""The settings of a compression search, as dataclasses (Hydra composes them from ``conf/``;
Python users build them directly). :func:`check_config` validates everything before any work
and names the key and the accepted values of anything wrong.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from botorch_archsearch.acquisition.edits import EDIT_OPTIMIZATION_METHODS
from botorch_archsearch.acquisition.multi_kernel import ACQUISITIONS
from botorch_archsearch.evaluation.data import DATASET_NAMES
from botorch_archsearch.evaluation.distill import KD_LOSSES
from botorch_archsearch.evaluation.reward import REWARD_MEASURES
from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.gp.fit import OBJECTIVES
from botorch_archsearch.models import TEACHER_KINDS, TEACHER_NAMES, load_function, torchvision_model_names
from botorch_archsearch.space import CHANNEL_ORDERS, MAGNITUDE_SCOPES, ONESHOT_METHODS

SEARCH_METHODS = ("esnac", "random", "both", "uniform", "magnitude")
SEARCH_INITS = ("random", "oneshot")
LOCAL_EDITS = ("perturb", "mutate")
CONFIG_NAME = "config.json"  # a run directory's saved config


@dataclass
class TeacherConfig:
    r"""The teacher: a zoo network, a torchvision classification model or a user's own network,
    trained on the dataset (cached) or loaded from a checkpoint.

    Args:
        kind: ``"zoo"`` (``name`` is one of :data:`~botorch_archsearch.models.TEACHER_NAMES`),
            ``"torchvision"`` (``name`` is a torchvision classification model, e.g.
            ``"resnet18"``, ``"efficientnet_b0"``; see
            :func:`~botorch_archsearch.models.get_torchvision_model`) or ``"module"`` (``module``
            builds it and ``name`` is ``None``).
        name: The zoo or torchvision network.
        module: ``"package.module:function"``, for ``kind="module"``: the function is called as
            ``function(num_classes=..., in_channels=...)`` (``in_channels`` only if it takes it)
            and returns the ``nn.Module`` (see :func:`~botorch_archsearch.models.get_module_model`).
            The Hydra app can import modules from the directory it is run from.
        width: Channel-width multiplier of a zoo network (1.0: paper size); torchvision and user
            networks come at their own size and ignore it.
        checkpoint: A state_dict file of the network to load instead of training one.
        epochs: Training epochs when trained here.
        lr: Initial SGD learning rate.
        batch_size: Images per batch.
        max_batches: Stop each training epoch after this many batches (quick runs).
        cache_dir: The trained-teacher cache (default ``~/.cache/botorch_archsearch/teachers``).
        seed: Seed of the teacher's training (not the search's ``seed``: searches with different
            seeds share one trained teacher).
    """

    name: str | None = "resnet18"
    kind: str = "zoo"
    module: str | None = None
    width: float = 0.125
    checkpoint: str | None = None
    epochs: int = 15
    lr: float = 0.05
    batch_size: int = 128
    max_batches: int | None = None
    cache_dir: str | None = None
    seed: int = 0


@dataclass
class DatasetConfig:
    r"""The dataset (see :func:`~botorch_archsearch.evaluation.load_dataset`). ``split_seed``
    fixes which training images are held out for validation; it is not the search's ``seed``, so
    searches with different seeds share the split and the cached teacher."""

    name: str = "digits"
    root: str | None = None
    download: bool = False
    val_size: int | None = None
    image_size: int | None = None
    split_seed: int = 0


@dataclass
class SearchSettings:
    r"""The search.

    Args:
        method: ``"esnac"`` (Algorithm 1), ``"random"`` (random search, same evaluator and
            budget), ``"both"`` (random search, then ESNAC, in one run), or a one-shot baseline
            alone: ``"uniform"`` or ``"magnitude"`` (one evaluation per target, see
            :func:`~botorch_archsearch.space.oneshot_edit`).
        steps: ``T``, search steps (paper: 20).
        num_kernels: ``K``, kernels per step = architectures evaluated per step (paper: 8).
            Random search evaluates ``T * K`` architectures, ``K`` at a time.
        subset_prob: Probability that a kernel trains on each evaluated architecture (paper: 0.5).
        removal: Allow layer removal.
        shrinkage: Allow layer shrinkage.
        skip: Allow skip-connection addition.
        removal_probs: Per-candidate layer-removal probabilities to draw from (default: the
            search space's).
        shrink_range: ``[low, high]`` of the shrinkage ratios (default ``[0, 1]``).
        skip_probs: Per-candidate skip-addition probabilities to draw from (default: the
            search space's).
        channel_order: Which channels a shrunk group keeps, in every student of every method:
            ``"even"`` (evenly spread, the reference) or ``"magnitude"`` (the teacher's most
            important by group magnitude; ``uniform`` students always keep evenly spread ones).
        baselines: One-shot baselines (``"uniform"``, ``"magnitude"``) evaluated after the search,
            one evaluation per target, recorded as methods of their own.
        targets: The one-shot students' sizes, as fractions of the teacher's (in
            ``reward.budget_measure``, else ``reward.measure``). ``None``: the size of the best
            student of each search method of the run (the one-shots at equal compression), else
            ``reward.budget``, else ``[0.5, 0.25, 0.125]``.
        magnitude_scope: ``"group"`` (one ratio for all groups, Torch-Pruning's default) or
            ``"global"`` (one importance threshold for all groups).
        init: ESNAC's first step: ``"random"`` edits (the paper) or ``"oneshot"``: ``uniform``
            and ``magnitude`` students at the sizes of :data:`INIT_TARGETS` (the rest random).
        local_fraction: The share of each kernel's ``acquisition.num_candidates`` that are local
            edits of the best students so far, with smaller changes as the search goes on (as a
            trust region narrows); 0: the paper's random edits only.
        local_edits: How local edits are made: ``"mutate"`` (entries redrawn anywhere,
            :func:`~botorch_archsearch.space.mutate_edits`) or ``"perturb"`` (small normal steps
            of the ratios and about one removal flip, :func:`~botorch_archsearch.space.perturb_edits`).
        shrink_spread: The sampler's shrink ratios: ``None``, independent per group (the
            reference); a number ``s``, one ratio per candidate plus ``s * N(0, 1)`` per group.
    """

    method: str = "esnac"
    steps: int = 20
    num_kernels: int = 8
    subset_prob: float = 0.5
    removal: bool = True
    shrinkage: bool = True
    skip: bool = True
    removal_probs: list[float] | None = None
    shrink_range: list[float] | None = None
    skip_probs: list[float] | None = None
    channel_order: str = "even"
    baselines: list[str] = field(default_factory=list)
    targets: list[float] | None = None
    magnitude_scope: str = "group"
    init: str = "random"
    local_fraction: float = 0.0
    local_edits: str = "mutate"
    shrink_spread: float | None = None


@dataclass
class KernelConfig:
    r"""The learned kernel and its fitting (paper sections 3.1, 3.3).

    Args:
        hidden_size: Bi-LSTM hidden size (reference: 64).
        num_layers: Bi-LSTM layers (reference: 4).
        init_scale: Scale of the initial projection weights of the Bi-LSTM's inputs (see
            :class:`~botorch_archsearch.kernels.BiLSTMEmbedding`).
        objective: ``"loo"`` (paper Eq. 5) or ``"exact"`` marginal likelihood.
        lr: Adam learning rate.
        weight_decay: Weight decay of the network.
        max_steps: At most this many Adam steps.
        tol: Moving-average stopping tolerance.
        transfer_from: A run directory whose saved kernels score the candidates (no training).
    """

    hidden_size: int = 64
    num_layers: int = 4
    init_scale: float = 1.0
    objective: str = "loo"
    lr: float = 1e-3
    weight_decay: float = 5e-4
    max_steps: int = 100
    tol: float = 1e-3
    transfer_from: str | None = None


@dataclass
class AcquisitionConfig:
    r"""The acquisition: ``"logei"`` or ``"ei"``, maximised by ``"random"`` sampling of
    ``num_candidates`` edits (paper 3.2) or ``"evolutionary"`` (Table 6)."""

    name: str = "logei"
    method: str = "random"
    num_candidates: int = 1000


@dataclass
class DaskConfig:
    r"""The Dask evaluation backend (``evaluation.backend=dask``).

    Args:
        address: A scheduler to join (``tcp://host:8786``); ``None``: a ``LocalCluster`` on
            127.0.0.1 is started for the search.
        workers: Worker processes of the local cluster.
        threads_per_worker: Threads per local worker.
        gpus_per_worker: ``GPU`` resources per local worker (one student per GPU at a time).
        retries: Re-submissions of a student whose worker died, before it is recorded as failed.
        dashboard: Serve the local cluster's dashboard on 127.0.0.1:8787.
    """

    address: str | None = None
    workers: int = 2
    threads_per_worker: int = 1
    gpus_per_worker: int = 0
    retries: int = 2
    dashboard: bool = False


@dataclass
class EvaluationConfig:
    r"""Knowledge-distillation evaluation of each proposed student (paper 4.1), in this process
    (``backend="local"``) or on a Dask cluster (``backend="dask"``, see :class:`DaskConfig`).
    ``bf16``: bfloat16 autocast for the students' and teacher's forward passes; ``None`` turns it
    on where the device computes bf16 natively (CUDA from Ampere on, CPUs with AMX; see
    :func:`~botorch_archsearch.utils.native_bf16`). ``isolation`` (local backend): ``"process"``
    trains in a worker process that is restarted when a student kills it, ``"none"`` in the
    search's process, ``None``: ``"process"`` on a CPU, ``"none"`` on CUDA."""

    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 5e-4
    batch_size: int = 128
    loss: str = "mse"
    temperature: float = 4.0
    max_batches: int | None = None
    device: str = "cpu"
    bf16: bool | None = None
    workers: int | None = None
    isolation: str | None = None
    backend: str = "local"
    dask: DaskConfig = field(default_factory=DaskConfig)


@dataclass
class RewardConfig:
    r"""The reward ``f(x) = C (2 - C) A / A_teacher``: ``measure`` of ``C`` (``"params"`` or
    ``"flops"``) and an optional hard ``budget`` on ``budget_measure``."""

    measure: str = "params"
    budget: float | None = None
    budget_measure: str | None = None


@dataclass
class FinalConfig:
    r"""Full training of the best students (paper: top 4, 300 epochs, SGD 0.01, x0.1 every 100)."""

    top_k: int = 4
    epochs: int = 300
    lr: float = 0.01
    step_size: int = 100
    batch_size: int = 128
    max_batches: int | None = None


@dataclass
class CompressConfig:
    r"""Everything a compression search needs; the root of the Hydra config."""

    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    search: SearchSettings = field(default_factory=SearchSettings)
    kernel: KernelConfig = field(default_factory=KernelConfig)
    acquisition: AcquisitionConfig = field(default_factory=AcquisitionConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    final: FinalConfig = field(default_factory=FinalConfig)
    seed: int = 0
    progress: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (for the run directory)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CompressConfig:
        """Build from a (possibly partial) nested dict; unknown keys are an error naming them."""
        return _from_dict(cls, values, "")


def upgrade_saved_config(saved: dict[str, Any]) -> dict[str, Any]:
    r"""A run directory's ``config.json`` with the keys added since it was written filled in with the
    values that reproduce what the code that wrote it did, so an older search resumes unchanged.

    - ``dataset.split_seed`` and ``teacher.seed`` (once both followed ``seed``): ``seed``;
    - ``teacher.kind`` ``"zoo"`` and ``teacher.module`` ``None`` (teachers were zoo networks);
    - ``evaluation.bf16`` (bf16 autocast was then only on CUDA): ``None`` (automatic) on a CUDA
      device, ``False`` on a CPU;
    - ``kernel.init_scale``: 1.0;
    - ``search.channel_order`` ``"even"``, ``search.baselines`` ``[]``, ``search.targets``
      ``None``, ``search.magnitude_scope`` ``"group"``, ``search.init`` ``"random"``,
      ``search.local_fraction`` 0, ``search.local_edits`` ``"mutate"`` (the first local edits),
      ``search.shrink_spread`` ``None``.

    Args:
        saved: The nested dict read from ``config.json``.

    Returns:
        A new dict; ``saved`` is not modified.
    """
    upgraded = json.loads(json.dumps(saved))
    seed = upgraded.get("seed", 0)
    for group in ("dataset", "teacher"):
        section = upgraded.setdefault(group, {})
        if isinstance(section, dict):
            section.setdefault("split_seed" if group == "dataset" else "seed", seed)
    teacher = upgraded["teacher"]
    if isinstance(teacher, dict):
        teacher.setdefault("kind", "zoo")
        teacher.setdefault("module", None)
    evaluation = upgraded.setdefault("evaluation", {})
    if isinstance(evaluation, dict) and "bf16" not in evaluation:
        device = str(evaluation.get("device", "cpu"))
        evaluation["bf16"] = None if device.startswith("cuda") else False
    kernel = upgraded.setdefault("kernel", {})
    if isinstance(kernel, dict):
        kernel.setdefault("init_scale", 1.0)
    search = upgraded.setdefault("search", {})
    if isinstance(search, dict):
        for key, value in (("channel_order", "even"), ("baselines", []), ("targets", None),
                           ("magnitude_scope", "group"), ("init", "random"), ("local_fraction", 0.0),
                           ("local_edits", "mutate"), ("shrink_spread", None)):
            search.setdefault(key, value)
    return upgraded


def read_saved_config(run_dir: str | Path) -> dict[str, Any]:
    r"""The configuration a run directory was started with: its ``config.json``, as written (pass it
    through :func:`upgrade_saved_config` before :meth:`CompressConfig.from_dict`).

    Args:
        run_dir: The run directory.

    Returns:
        The nested dict of ``config.json``.

    Raises:
        ArchSearchError: If the file is missing, unreadable or not a JSON object (naming the file,
            and the line and column of a syntax error).
    """
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        raise ArchSearchError(f"{str(Path(run_dir))!r} is not a run directory (no {CONFIG_NAME}).")
    restore = "restore it from the run's .hydra/config.yaml (the same settings, as YAML) or start the run again"
    where = repr(str(path))
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ArchSearchError(
            f"{where} is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}); {restore}."
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ArchSearchError(f"cannot read {where} ({error}); {restore}.") from None
    if not isinstance(saved, dict):
        raise ArchSearchError(f"{where} holds a JSON {type(saved).__name__}, not the config object; {restore}.")
    return saved


def _from_dict(cls: type, values: Any, prefix: str) -> Any:
    names = {f.name: f for f in dataclasses.fields(cls)}
    if not isinstance(values, dict):
        raise ArchSearchError(f"{prefix or 'config'} must be a mapping of {sorted(names)}, got {values!r}.")
    unknown = sorted(set(values) - set(names))
    if unknown:
        where = f"{prefix}: unknown key(s)" if prefix else "unknown config key(s)"
        raise ArchSearchError(f"{where} {unknown}; accepted: {sorted(names)}.")
    kwargs = {}
    for name, value in values.items():
        f = names[name]
        factory = f.default_factory
        if factory is not dataclasses.MISSING and dataclasses.is_dataclass(factory):
            value = _from_dict(factory, value, f"{prefix}.{name}" if prefix else name)
        kwargs[name] = value
    return cls(**kwargs)


def check_config(config: CompressConfig) -> None:
    r"""Validate a configuration before any work.

    Raises:
        ArchSearchError: Naming the first wrong key, its value and what is accepted.
    """
    _teacher(config.teacher)
    _positive("teacher.width", config.teacher.width)
    _integer("teacher.epochs", config.teacher.epochs, 1)
    _positive("teacher.lr", config.teacher.lr)
    _integer("teacher.batch_size", config.teacher.batch_size, 1)
    _integer("teacher.max_batches", config.teacher.max_batches, 1, optional=True)
    _integer("teacher.seed", config.teacher.seed, 0)
    _choice("dataset.name", config.dataset.name, DATASET_NAMES)
    _integer("dataset.val_size", config.dataset.val_size, 1, optional=True)
    _integer("dataset.image_size", config.dataset.image_size, 4, optional=True)
    _integer("dataset.split_seed", config.dataset.split_seed, 0)
    _boolean("dataset.download", config.dataset.download)
    _choice("search.method", config.search.method, SEARCH_METHODS)
    _integer("search.steps", config.search.steps, 1)
    _integer("search.num_kernels", config.search.num_kernels, 1)
    _ratio("search.subset_prob", config.search.subset_prob, open_low=True)
    for key in ("removal", "shrinkage", "skip"):
        _boolean(f"search.{key}", getattr(config.search, key))
    if not (config.search.removal or config.search.shrinkage or config.search.skip):
        raise ArchSearchError("search: at least one of search.removal, search.shrinkage, search.skip must be true.")
    for key in ("removal_probs", "shrink_range", "skip_probs"):
        values = getattr(config.search, key)
        if values is None:
            continue
        if not isinstance(values, (list, tuple)) or not values:
            raise ArchSearchError(f"search.{key} must be a non-empty list of numbers in [0, 1], got {values!r}.")
        for value in values:
            _ratio(f"search.{key}", value)
    if config.search.shrink_range is not None and (
        len(config.search.shrink_range) != 2 or config.search.shrink_range[0] > config.search.shrink_range[1]
    ):
        raise ArchSearchError(f"search.shrink_range must be [low, high] with low <= high, got {config.search.shrink_range!r}.")
    _choice("search.channel_order", config.search.channel_order, CHANNEL_ORDERS)
    baselines = config.search.baselines
    if not isinstance(baselines, (list, tuple)) or any(b not in ONESHOT_METHODS for b in baselines) \
            or len(set(baselines)) != len(baselines):
        raise ArchSearchError(
            f"search.baselines must be a list of distinct one-shot methods from {list(ONESHOT_METHODS)}, got "
            f"{baselines!r}."
        )
    targets = config.search.targets
    if targets is not None:
        if not isinstance(targets, (list, tuple)) or not targets:
            raise ArchSearchError(
                f"search.targets must be null or a non-empty list of fractions of the teacher's size in (0, 1], "
                f"got {targets!r}."
            )
        for value in targets:
            _ratio("search.targets", value, open_low=True)
    _choice("search.magnitude_scope", config.search.magnitude_scope, MAGNITUDE_SCOPES)
    _choice("search.init", config.search.init, SEARCH_INITS)
    fraction = config.search.local_fraction
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
        raise ArchSearchError(f"search.local_fraction must be a number in [0, 1), got {fraction!r}.")
    _choice("search.local_edits", config.search.local_edits, LOCAL_EDITS)
    if config.search.shrink_spread is not None:
        _non_negative("search.shrink_spread", config.search.shrink_spread)
    _integer("kernel.hidden_size", config.kernel.hidden_size, 1)
    _integer("kernel.num_layers", config.kernel.num_layers, 1)
    scale = config.kernel.init_scale
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < math.inf:
        raise ArchSearchError(f"kernel.init_scale must be a finite number > 0, got {scale!r}.")
    _choice("kernel.objective", config.kernel.objective, OBJECTIVES)
    _positive("kernel.lr", config.kernel.lr)
    _non_negative("kernel.weight_decay", config.kernel.weight_decay)
    _integer("kernel.max_steps", config.kernel.max_steps, 1)
    _non_negative("kernel.tol", config.kernel.tol)
    if config.kernel.transfer_from is not None and not (Path(config.kernel.transfer_from) / "kernels").is_dir():
        raise ArchSearchError(
            "kernel.transfer_from must be the run directory of an ESNAC search (holding kernels/), got "
            f"{config.kernel.transfer_from!r}."
        )
    _choice("acquisition.name", config.acquisition.name, tuple(ACQUISITIONS))
    _choice("acquisition.method", config.acquisition.method, EDIT_OPTIMIZATION_METHODS)
    _integer("acquisition.num_candidates", config.acquisition.num_candidates, 1)
    _integer("evaluation.epochs", config.evaluation.epochs, 1)
    _positive("evaluation.lr", config.evaluation.lr)
    _non_negative("evaluation.weight_decay", config.evaluation.weight_decay)
    _integer("evaluation.batch_size", config.evaluation.batch_size, 1)
    _choice("evaluation.loss", config.evaluation.loss, KD_LOSSES)
    _positive("evaluation.temperature", config.evaluation.temperature)
    _integer("evaluation.max_batches", config.evaluation.max_batches, 1, optional=True)
    _integer("evaluation.workers", config.evaluation.workers, 1, optional=True)
    if config.evaluation.isolation is not None:
        _choice("evaluation.isolation", config.evaluation.isolation, ("process", "none"))
    _boolean("evaluation.bf16", config.evaluation.bf16,
             null="bf16 autocast where the device computes bf16 natively")
    _device("evaluation.device", config.evaluation.device)
    _choice("evaluation.backend", config.evaluation.backend, ("local", "dask"))
    _integer("evaluation.dask.workers", config.evaluation.dask.workers, 1)
    _integer("evaluation.dask.threads_per_worker", config.evaluation.dask.threads_per_worker, 1)
    _integer("evaluation.dask.gpus_per_worker", config.evaluation.dask.gpus_per_worker, 0)
    _integer("evaluation.dask.retries", config.evaluation.dask.retries, 0)
    _boolean("evaluation.dask.dashboard", config.evaluation.dask.dashboard)
    _choice("reward.measure", config.reward.measure, REWARD_MEASURES)
    if config.reward.budget is not None:
        _positive("reward.budget", config.reward.budget)
    if config.reward.budget_measure is not None:
        _choice("reward.budget_measure", config.reward.budget_measure, REWARD_MEASURES)
    _integer("final.top_k", config.final.top_k, 0)
    _integer("final.epochs", config.final.epochs, 1)
    _positive("final.lr", config.final.lr)
    _integer("final.step_size", config.final.step_size, 1)
    _integer("final.batch_size", config.final.batch_size, 1)
    _integer("final.max_batches", config.final.max_batches, 1, optional=True)
    _integer("seed", config.seed, 0)
    _boolean("progress", config.progress, null="progress bars only on a terminal")


def _teacher(teacher: TeacherConfig) -> None:
    """The teacher's kind, and its name or module; a user's module is imported here (not called)."""
    _choice("teacher.kind", teacher.kind, TEACHER_KINDS)
    kind, name, module = teacher.kind, teacher.name, teacher.module
    if kind == "module":
        if name is not None:
            raise ArchSearchError(
                f"teacher.name={name!r} and teacher.module={module!r} are both set: a teacher is a named network or "
                f"your module, not both. For your module: teacher=module teacher.module={module} (teacher.name=null); "
                f"for a named network, teacher=torchvision teacher.name={name} or a zoo teacher (teacher=resnet18, ...)."
            )
        if module is None:
            raise ArchSearchError(
                "teacher.module must be set for teacher.kind=module: 'package.module:function', a function (or "
                "class) called as function(num_classes=..., in_channels=...) that returns the nn.Module, e.g. "
                "teacher=module teacher.module=mynets:make_net."
            )
        load_function(module)  # one line naming what cannot be imported
        return
    if module is not None:
        raise ArchSearchError(
            f"teacher.module={module!r} is set but teacher.kind={kind!r} builds teacher.name={name!r}: a teacher is a "
            f"named network or your module, not both. For your module: teacher=module teacher.module={module}; "
            f"for the {kind} network {name!r}, drop teacher.module."
        )
    if kind == "zoo":
        _choice("teacher.name", name, TEACHER_NAMES)
        return
    names = torchvision_model_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3) if isinstance(name, str) else []
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise ArchSearchError(
            f"teacher.name={name!r} is not a torchvision classification model{hint}; accepted (teacher=torchvision): "
            f"{', '.join(names)}."
        )


def _boolean(key: str, value: Any, null: str | None = None) -> None:
    # Hydra passes a misspelt `true` (`search.skip=flase`) on as a string, which is truthy.
    if isinstance(value, bool) or (value is None and null is not None):
        return
    accepted = f"true, false or null ({null})" if null is not None else "true or false"
    raise ArchSearchError(f"{key} must be {accepted}, got {value!r}.")


def _device(key: str, value: Any) -> None:
    if not isinstance(value, str) or not re.fullmatch(r"cpu|cuda(:\d+)?", value):
        raise ArchSearchError(f"{key} must be 'cpu', 'cuda' or 'cuda:N', got {value!r}.")
    if value == "cpu":
        return
    if torch.version.cuda is None:
        raise ArchSearchError(
            f"{key}={value!r}, but this torch ({torch.__version__}) is a build without CUDA. Install a CUDA "
            f"build of torch {torch.__version__.split('+')[0]} with pip (from PyTorch's wheel index for your "
            f"CUDA version), or use {key}=cpu."
        )
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ArchSearchError(
            f"{key}={value!r}, but torch {torch.__version__} (built with CUDA {torch.version.cuda}) sees no "
            "GPU: none is installed or visible (CUDA_VISIBLE_DEVICES), or the NVIDIA driver is too old for this "
            f"CUDA version. Use {key}=cpu, or make a GPU visible."
        )
    index = int(value.partition(":")[2] or 0)
    if index >= count:
        raise ArchSearchError(
            f"{key}={value!r}, but only {count} GPU{'s are' if count > 1 else ' is'} visible "
            f"(cuda:0{f' to cuda:{count - 1}' if count > 1 else ''})."
        )


def _choice(key: str, value: Any, accepted: tuple[str, ...]) -> None:
    if value not in accepted:
        raise ArchSearchError(f"{key} must be one of {list(accepted)}, got {value!r}.")


def _integer(key: str, value: Any, minimum: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ArchSearchError(f"{key} must be an integer >= {minimum}{' or null' if optional else ''}, got {value!r}.")


def _positive(key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ArchSearchError(f"{key} must be a number > 0, got {value!r}.")


def _non_negative(key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ArchSearchError(f"{key} must be a number >= 0, got {value!r}.")


def _ratio(key: str, value: Any, open_low: bool = False) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and (0 < value <= 1 if open_low else 0 <= value <= 1)
    if not ok:
        raise ArchSearchError(f"{key} must be a number in {'(0, 1]' if open_low else '[0, 1]'}, got {value!r}.")


__all__ = [
    "AcquisitionConfig",
    "CompressConfig",
    "DaskConfig",
    "DatasetConfig",
    "EvaluationConfig",
    "FinalConfig",
    "KernelConfig",
    "LOCAL_EDITS",
    "RewardConfig",
    "SEARCH_INITS",
    "SEARCH_METHODS",
    "SearchSettings",
    "TeacherConfig",
    "check_config",
    "read_saved_config",
    "upgrade_saved_config",
]
