r"""The settings of a compression search: one schema, these dataclasses.

Hydra composes ``conf/`` on top of them (:func:`register_configs` puts the schema in Hydra's
ConfigStore; the YAML files hold only what differs from the defaults here); Python users build
them directly. OmegaConf checks the type of every value and refuses unknown keys, in the
command-line app, in :meth:`CompressConfig.from_dict` and in :func:`check_config` alike;
:func:`check_config` adds what a type cannot say (ranges, choices, keys that depend on each
other). The keys that may change when a search is resumed are :data:`RESUMABLE_KEYS`.

Nothing here imports Hydra; OmegaConf is imported when a config is checked.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import json
import math
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from botorch_archsearch.acquisition.edits import EDIT_OPTIMIZATION_METHODS
from botorch_archsearch.acquisition.multi_kernel import ACQUISITIONS
from botorch_archsearch.acquisition.objective import KERNEL_TARGETS
from botorch_archsearch.evaluation.data import DATASET_NAMES
from botorch_archsearch.evaluation.distill import KD_LOSSES
from botorch_archsearch.evaluation.reward import REWARD_KINDS, REWARD_MEASURES
from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.gp.fit import KERNEL_NAMES, OBJECTIVES, WIDTH_INITS
from botorch_archsearch.kernels import load_kernel
from botorch_archsearch.models import TEACHER_KINDS, TEACHER_NAMES, load_function, torchvision_model_names
from botorch_archsearch.search.constraints import parse_constraints
from botorch_archsearch.space import CHANNEL_ORDERS, MAGNITUDE_SCOPES
from botorch_archsearch.utils.validation import check_choice, check_float, check_int

SEARCH_METHODS = ("esnac", "random", "both", "uniform", "magnitude")
"""The built-in values of ``search.method``; a method registered with
:func:`~botorch_archsearch.search.policies.register_policy` is accepted too."""
SEARCH_INITS = ("random", "oneshot")
SEARCH_OBJECTIVES = ("reward", "pareto")
PARETO_COSTS = ("latency",)
LOCAL_EDITS = ("perturb", "mutate")
ISOLATIONS = ("process", "none")
BACKENDS = ("local", "dask")
N2N_OVER_BUDGET = ("zero", "shaped")
r"""What N2N's policy learns from a child above the budget (``methods.n2n_over_budget``)."""
CONFIG_NAME = "config.json"  # a run directory's saved config
SCHEMA_NAME = "compress_schema"
"""The schema's name in Hydra's ConfigStore: the first entry of ``conf/config.yaml``'s defaults list."""


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
    r"""The dataset (see :func:`~botorch_archsearch.evaluation.load_dataset`).

    Args:
        name: One of :data:`~botorch_archsearch.evaluation.DATASET_NAMES`.
        root: Where its files are (default ``~/.cache/botorch_archsearch/data``).
        download: Download it if it is missing (needs internet).
        val_size: Training images held out for validation (default: the dataset's own).
        image_size: Resize the images to this side.
        split_seed: Which training images are held out for validation; not the search's ``seed``,
            so searches with different seeds share the split and the cached teacher.
    """

    name: str = "digits"
    root: str | None = None
    download: bool = False
    val_size: int | None = None
    image_size: int | None = None
    split_seed: int = 0


@dataclass
class SearchConfig:
    r"""The search.

    Args:
        method: ``"esnac"`` (Algorithm 1), ``"random"`` (random search, same evaluator and
            budget), ``"both"`` (random search, then ESNAC, in one run), a one-shot baseline
            alone: ``"uniform"`` or ``"magnitude"`` (one evaluation per target, see
            :func:`~botorch_archsearch.space.oneshot_edit`), one of the field's methods
            (:mod:`botorch_archsearch.field`): the searches ``"n2n"`` and
            ``"evolutionary_synthesis"``, the regularised ``"group_lasso"``,
            ``"variational_dropout"`` and ``"morphnet"`` (one evaluation per target), or any
            registered :class:`~botorch_archsearch.search.ProposalPolicy`.
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
        baselines: Methods of one student per target (``"uniform"``, ``"magnitude"``,
            ``"group_lasso"``, ``"variational_dropout"``, ``"morphnet"``) evaluated after the
            search, recorded as methods of their own.
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
        constraints: Constraints on every student, ``"<measure><=<limit>"`` with measure
            ``params``, ``flops`` or ``latency`` and the limit a fraction of the teacher's (at most
            1) or an absolute count or milliseconds (``latency<=0.4ms``;
            :mod:`botorch_archsearch.search.constraints`): no ESNAC or random candidate that
            breaks one is proposed, the one-shot methods build the largest student that meets
            them, and a student that breaks one scores 0. A latency is timed on the untrained
            network at batch 1 on ``evaluation.device``, before training.
        channel_multiple: Every shrunk channel group keeps a multiple of this many channels (where
            the group's size is one; hardware that wants multiples of 8 or 16), in every method's
            students.
        objective: What ESNAC optimises: ``"reward"`` (the reward ``f``, the paper) or
            ``"pareto"`` (the front of accuracy against size in ``reward.budget_measure``, else
            ``reward.measure``: the GPs model the accuracy ratio, each kernel's acquisition is the
            expected hypervolume improvement with the candidates' exact sizes, and the final
            training takes up to ``final.top_k`` students of the front).
        pareto_cost: The front's cost with ``objective=pareto``: ``None`` (the size, known
            exactly) or ``"latency"`` (the measured latency at batch 1, ``evaluation.latency_batch``:
            a GP on the log latency of the evaluated students predicts the candidates').
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
    constraints: list[str] = field(default_factory=list)
    channel_multiple: int = 1
    objective: str = "reward"
    pareto_cost: str | None = None


SearchSettings = SearchConfig
"""Deprecated alias of :class:`SearchConfig`, its name before the config schema was unified."""


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
        target: What the GP models: ``"reward"`` (the paper: the reward ``f`` itself) or
            ``"accuracy"`` (the accuracy ratio ``A / A_teacher``; the acquisition scores ``f`` with
            each candidate's exactly known size factor ``C (2 - C)``, or 1 for
            ``reward.kind=accuracy``, 0 above ``reward.budget``).
        width_init: Where a fresh kernel's RBF width starts: ``"paper"`` (1, the reference) or
            ``"median"`` (the median distance between the fresh embeddings of its training
            architectures).
        warm_start: Start each step's kernel ``k`` from the fitted kernel ``k`` of the method's
            previous step (saved in the run directory) instead of from scratch (the paper).
        name: The surrogate's kernel: ``"bilstm"`` (the paper's learned kernel), ``"edit"`` (an
            ARD Matern-5/2 on the edit vector) or ``"wl"`` (Weisfeiler-Lehman subtree features,
            NAS-BOWL); the last two have no network, are fitted by L-BFGS-B, and are not saved
            for transfer or warm starts.
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
    target: str = "reward"
    width_init: str = "paper"
    warm_start: bool = False
    name: str = "bilstm"


@dataclass
class AcquisitionConfig:
    r"""The acquisition: ``"logei"`` or ``"ei"``, maximised by ``"random"`` sampling of
    ``num_candidates`` edits (paper 3.2) or ``"evolutionary"`` (Table 6). ``name="random"`` is the
    ablation of the surrogate: no kernel is fitted, and each of the ``K`` proposals is a uniformly
    random choice among the same candidates (one-shot start, local and random edits)."""

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

    Args:
        epochs: Distillation epochs per student (paper: 10).
        lr: Adam learning rate.
        weight_decay: Weight decay.
        batch_size: Images per batch.
        loss: ``"mse"`` between logits (the reference) or ``"kl"`` at ``temperature``.
        temperature: Softmax temperature of the ``"kl"`` loss.
        max_batches: Stop each epoch after this many batches (quick runs).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        bf16: bfloat16 autocast for the students' and teacher's forward passes; ``None`` turns it on
            where the device computes bf16 natively (CUDA from Ampere on, CPUs with AMX; see
            :func:`~botorch_archsearch.utils.native_bf16`).
        workers: Students that take their step at the same time, in threads (default: one per
            intra-op thread on a CPU, 1 on CUDA).
        isolation: Local backend: ``"process"`` trains in a worker process that is restarted when a
            student kills it (the student is recorded as failed), ``"none"`` in the search's process;
            ``None``: ``"process"`` on a CPU, ``"none"`` on CUDA.
        backend: ``"local"`` or ``"dask"``.
        dask: The Dask backend's settings.
        channels_last: Train students channels-last where the numerics guard finds that layout
            computes correctly on this machine (faster; the guard's probe process checks the
            convolutions, a few seconds of one core per run); ``False``: always the contiguous
            layout (no probe).
        latency_batch: Measure every trained student's inference latency on the evaluation
            device (with Dask, the worker that trained it) at batch 1 and this batch, recorded in
            the journal (``latency``: milliseconds per batch, the device, the host, the layout);
            ``None``: not measured.
    """

    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 5e-4
    batch_size: int = 128
    loss: str = "mse"
    temperature: float = 4.0
    max_batches: int | None = None
    device: str = "cpu"
    bf16: bool | None = field(
        default=None, metadata={"null": "bf16 autocast where the device computes bf16 natively"}
    )
    workers: int | None = None
    isolation: str | None = None
    backend: str = "local"
    dask: DaskConfig = field(default_factory=DaskConfig)
    channels_last: bool = True
    latency_batch: int | None = None


@dataclass
class RewardConfig:
    r"""The reward ``f(x) = C (2 - C) A / A_teacher``: ``measure`` of ``C`` (``"params"`` or
    ``"flops"``) and an optional hard ``budget`` on ``budget_measure``; ``kind="accuracy"``
    rewards ``A / A_teacher`` within the budget instead (0 above it; needs ``budget``)."""

    measure: str = "params"
    budget: float | None = None
    budget_measure: str | None = None
    kind: str = "n2n"


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
class MethodsConfig:
    r"""The field's methods (``../shared/FIELD.md``, README "The field's methods"): their settings.

    The regularised methods (``group_lasso``, ``variational_dropout``, ``morphnet``) train a copy
    of the teacher for ``epochs`` on the task loss plus their regulariser, then keep channels to
    each target; their students inherit the regularised weights (a weight source of the run).

    Args:
        epochs: Epochs of regularised training of the teacher copy (the authors: 100-200; scaled
            down for a CPU budget).
        lr: Learning rate of the regularised training's weights (SGD with momentum 0.9 for Group
            Lasso and MorphNet, Adam for Variational Dropout).
        batch_size: Images per batch of the regularised training.
        max_batches: Stop each epoch of the regularised training after this many batches.
        group_lasso_strength: ``lambda`` of ``lambda * sum_g sqrt(|g|) ||theta_g||_2`` (per
            channel, the coupled output weights of every layer of its group). Default 5e-3, near
            SSL's 3e-3: on the tiny ResNet-18 of ``benchmarks/bench_methods.py``, 0.025 (Torch-
            Pruning's 5e-4 over 100 epochs scaled to 2) zeroed 272 of its 360 channels in 2
            epochs and left the teacher at 36% validation accuracy.
        vd_lr: Adam learning rate of Variational Dropout's weights (the authors: 1e-5 over 200
            epochs).
        vd_log_sigma2_lr: Adam learning rate of Variational Dropout's ``log_sigma2``.
        vd_threshold: Weights with ``log_alpha`` at or above it are dropped (Molchanov et al.: 3).
        morphnet_strength: The FLOP regulariser's strength; ``None``: 1 / the teacher's regulariser
            value at the start (as the authors suggest).
        morphnet_threshold: A channel is alive while its ``|gamma|`` is above this.
        n2n_removal_share: N2N: the share of its evaluations spent in the layer-removal stage (the
            rest in the shrinkage stage).
        n2n_rollouts: N2N: children per policy update (REINFORCE with a moving-average baseline).
        n2n_over_budget: N2N: what its policy learns from a child above ``reward.budget``:
            ``"zero"`` (default) its reward, 0, like every child above it: where no child is within
            the budget every advantage is 0 and the policy never moves (measured at 1/5 and 1/10 of
            a tiny ResNet-18's FLOPs); ``"shaped"`` ``-(size / budget - 1)``, minus its relative
            overshoot, which pulls the policy towards the budget (the stage-2 start is then the
            stage-1 child of the highest such value). The journal's rewards are the same either way.
        evolution_offspring: Evolutionary synthesis: offspring per generation.
        evolution_shrink: Evolutionary synthesis: the expected fraction of the parent's FLOPs (or
            params) each generation keeps.
    """

    epochs: int = 2
    lr: float = 0.01
    batch_size: int = 128
    max_batches: int | None = None
    group_lasso_strength: float = 5e-3
    vd_lr: float = 1e-4
    vd_log_sigma2_lr: float = 0.01
    vd_threshold: float = 3.0
    morphnet_strength: float | None = field(default=None, metadata={"null": "1 / the regulariser's initial value"})
    morphnet_threshold: float = 0.01
    n2n_removal_share: float = 0.5
    n2n_rollouts: int = 5
    n2n_over_budget: str = "zero"
    evolution_offspring: int = 4
    evolution_shrink: float = 0.7


@dataclass
class CompressConfig:
    r"""Everything a compression search needs; the schema of the Hydra app's config.

    A field's metadata ``"null"`` says what ``None`` means (for error messages).

    Args:
        seed: The search's seed.
        progress: Progress bars of training: ``None``: on a terminal only; ``True``: always (a line
            per epoch in a log); ``False``: never.
    """

    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    kernel: KernelConfig = field(default_factory=KernelConfig)
    acquisition: AcquisitionConfig = field(default_factory=AcquisitionConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    final: FinalConfig = field(default_factory=FinalConfig)
    methods: MethodsConfig = field(default_factory=MethodsConfig)
    seed: int = 0
    progress: bool | None = field(default=None, metadata={"null": "progress bars only on a terminal"})

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (for the run directory)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> CompressConfig:
        r"""Build from a (possibly partial) nested dict; a missing key takes its default.

        OmegaConf checks the values against the schema and converts them to their fields' types,
        as on the command line (``"true"`` and ``1`` become ``True``, ``"3"`` becomes ``3``).

        Raises:
            ArchSearchError: One line naming the first unknown key and the accepted ones, or the
                first value of a wrong type and what its key accepts
                (``search.removal must be true or false, got 'maybe'.``).
        """
        return _structured(cls, values)


RESUMABLE_KEYS = (
    "search.steps",
    "evaluation.backend",
    "evaluation.dask",
    "evaluation.workers",
    "evaluation.isolation",
    "progress",
)
"""The settings that may change when a search is resumed (a key and everything under it): more
steps extend the run; the others change where and how fast it runs, not its result (another Dask
scheduler, another number of threads). Everything else is the run's identity, checked on resume."""


def is_resumable(key: str) -> bool:
    r"""Whether the dotted config ``key`` may change on resume (it is, or is under, one of the
    :data:`RESUMABLE_KEYS`; e.g. ``evaluation.dask.workers``)."""
    return any(key == k or key.startswith(k + ".") for k in RESUMABLE_KEYS)


def without_resumable(values: Mapping[str, Any]) -> dict[str, Any]:
    r"""A config's nested dict less the :data:`RESUMABLE_KEYS`: the run's identity.

    Args:
        values: A nested dict of JSON values, as :meth:`CompressConfig.to_dict` makes.

    Returns:
        A new dict; ``values`` is not modified.
    """
    values = json.loads(json.dumps(values))
    for dotted in RESUMABLE_KEYS:
        *parents, last = dotted.split(".")
        node = values
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return values


def config_differences(started: Any, given: Any) -> list[str]:
    r"""``key: started with A, given B`` for each dotted key whose values differ, in key order.

    Values are shown as JSON; a key that only one side has is ``(missing)`` on the other.

    Example:
        >>> config_differences({"search": {"steps": 2}}, {"search": {"steps": 3}, "seed": 1})
        ['search.steps: started with 2, given 3', 'seed: started with (missing), given 1']
    """
    return _differences(started, given, "")


def options_for(function: Any, section: Any) -> dict[str, Any]:
    r"""The settings of a config ``section`` that ``function`` takes as keyword arguments of the same
    name: a section is passed through whole, and each function takes what it knows (a new setting
    of a function is one dataclass field, with no hand-written forwarding).

    Example:
        >>> finetune(student, data, **options_for(finetune, config.final), seed=0)
    """
    parameters = inspect.signature(function).parameters
    keyword = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return {f.name: getattr(section, f.name) for f in dataclasses.fields(section)
            if f.name in parameters and parameters[f.name].kind in keyword}


def register_configs(schema: type = CompressConfig, name: str = SCHEMA_NAME) -> None:
    r"""Put the schema in Hydra's ConfigStore, for the defaults list of ``conf/config.yaml``.

    Hydra then checks every composed value and override against the dataclasses (types, unknown
    keys). This imports Hydra: the command-line app calls it, importing the library does not.

    Args:
        schema: The root dataclass: :class:`CompressConfig`, or a subclass adding the app's keys.
        name: Its name in the ConfigStore.
    """
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=name, node=schema)


def upgrade_saved_config(saved: dict[str, Any]) -> dict[str, Any]:
    r"""A run directory's ``config.json`` with the keys added since it was written filled in with the
    values that reproduce what the code that wrote it did, so an older search resumes unchanged.

    - ``dataset.split_seed`` and ``teacher.seed`` (once both followed ``seed``): ``seed``;
    - ``teacher.kind`` ``"zoo"`` and ``teacher.module`` ``None`` (teachers were zoo networks);
    - ``evaluation.bf16`` (bf16 autocast was then only on CUDA): ``None`` (automatic) on a CUDA
      device, ``False`` on a CPU; ``evaluation.latency_batch`` ``None`` (not measured);
      ``evaluation.channels_last`` true (students always trained channels-last where the guard let them);
    - ``kernel.init_scale``: 1.0; ``kernel.target`` ``"reward"``, ``kernel.width_init``
      ``"paper"``, ``kernel.warm_start`` false, ``kernel.name`` ``"bilstm"`` (the paper's kernel);
    - ``search.channel_order`` ``"even"``, ``search.baselines`` ``[]``, ``search.targets``
      ``None``, ``search.magnitude_scope`` ``"group"``, ``search.init`` ``"random"``,
      ``search.local_fraction`` 0, ``search.local_edits`` ``"mutate"`` (the first local edits),
      ``search.shrink_spread`` ``None``, ``search.constraints`` ``[]``, ``search.channel_multiple`` 1, ``search.objective``
      ``"reward"``, ``search.pareto_cost`` ``None``;
    - ``methods`` (the field's methods, which such runs could not use): the defaults;
      ``methods.n2n_over_budget`` ``"zero"`` (N2N's policy learnt from the rewards);
    - ``reward.kind`` ``"n2n"`` (the only reward then).

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
    if isinstance(evaluation, dict):
        evaluation.setdefault("latency_batch", None)
        evaluation.setdefault("channels_last", True)
    kernel = upgraded.setdefault("kernel", {})
    if isinstance(kernel, dict):
        for key, value in (("init_scale", 1.0), ("target", "reward"), ("width_init", "paper"),
                           ("warm_start", False), ("name", "bilstm")):
            kernel.setdefault(key, value)
    search = upgraded.setdefault("search", {})
    if isinstance(search, dict):
        for key, value in (("channel_order", "even"), ("baselines", []), ("targets", None),
                           ("magnitude_scope", "group"), ("init", "random"), ("local_fraction", 0.0),
                           ("local_edits", "mutate"), ("shrink_spread", None), ("constraints", []), ("channel_multiple", 1),
                           ("objective", "reward"), ("pareto_cost", None)):
            search.setdefault(key, value)
    reward = upgraded.setdefault("reward", {})
    if isinstance(reward, dict):
        reward.setdefault("kind", "n2n")
    if "methods" not in upgraded:  # no field methods then: their settings change nothing
        upgraded["methods"] = dataclasses.asdict(MethodsConfig())
    if isinstance(upgraded["methods"], dict):
        upgraded["methods"].setdefault("n2n_over_budget", "zero")
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


def check_config(config: CompressConfig) -> None:
    r"""Validate a configuration before any work.

    First the types, by OmegaConf against the schema (a config built in Python must hold values of
    its fields' types: ``"no"`` is not a boolean), then what a type cannot say: ranges, choices
    and the keys that depend on each other.

    Raises:
        ArchSearchError: Naming the first wrong key, its value and what is accepted.
    """
    _check_types(config)
    teacher, dataset, search = config.teacher, config.dataset, config.search
    _teacher(teacher)
    check_float("teacher.width", teacher.width, 0, exclusive_minimum=True)
    check_int("teacher.epochs", teacher.epochs, 1)
    check_float("teacher.lr", teacher.lr, 0, exclusive_minimum=True)
    check_int("teacher.batch_size", teacher.batch_size, 1)
    _optional(check_int, "teacher.max_batches", teacher.max_batches, 1)
    check_int("teacher.seed", teacher.seed, 0)
    check_choice("dataset.name", dataset.name, DATASET_NAMES)
    _optional(check_int, "dataset.val_size", dataset.val_size, 1)
    _optional(check_int, "dataset.image_size", dataset.image_size, 4)
    check_int("dataset.split_seed", dataset.split_seed, 0)
    from botorch_archsearch.search.policies import (  # the registered methods (imports config)
        POLICIES,
        OneShot,
    )

    check_choice("search.method", search.method, [*SEARCH_METHODS, *sorted(m for m in POLICIES if m not in SEARCH_METHODS)])
    check_int("search.steps", search.steps, 1)
    check_int("search.num_kernels", search.num_kernels, 1)
    check_float("search.subset_prob", search.subset_prob, 0, 1, exclusive_minimum=True)
    if not (search.removal or search.shrinkage or search.skip):
        raise ArchSearchError("search: at least one of search.removal, search.shrinkage, search.skip must be true.")
    for key in ("removal_probs", "shrink_range", "skip_probs"):
        values = getattr(search, key)
        if values is None:
            continue
        if not values:
            raise ArchSearchError(
                f"search.{key} must be a non-empty list of numbers in [0, 1], got {values!r}."
            )
        for value in values:
            check_float(f"search.{key}", value, 0, 1)
    shrink_range = search.shrink_range
    if shrink_range is not None and (len(shrink_range) != 2 or shrink_range[0] > shrink_range[1]):
        raise ArchSearchError(
            f"search.shrink_range must be [low, high] with low <= high, got {shrink_range!r}."
        )
    check_choice("search.channel_order", search.channel_order, CHANNEL_ORDERS)
    baselines = search.baselines
    oneshot = [name for name, policy in POLICIES.items() if issubclass(policy, OneShot)]
    if any(b not in oneshot for b in baselines) or len(set(baselines)) != len(baselines):
        raise ArchSearchError(
            f"search.baselines must be a list of distinct one-shot methods from {oneshot}, got {baselines!r}."
        )
    if search.targets is not None:
        if not search.targets:
            raise ArchSearchError(
                f"search.targets must be null or a non-empty list of fractions of the teacher's size in (0, 1], "
                f"got {search.targets!r}."
            )
        for value in search.targets:
            check_float("search.targets", value, 0, 1, exclusive_minimum=True)
    check_choice("search.magnitude_scope", search.magnitude_scope, MAGNITUDE_SCOPES)
    check_choice("search.init", search.init, SEARCH_INITS)
    check_float("search.local_fraction", search.local_fraction, 0, 1, exclusive_maximum=True)
    parse_constraints(search.constraints)
    check_int("search.channel_multiple", search.channel_multiple, 1)
    check_choice("search.objective", search.objective, SEARCH_OBJECTIVES)
    _optional(check_choice, "search.pareto_cost", search.pareto_cost, PARETO_COSTS)
    if search.pareto_cost == "latency" and (search.objective != "pareto" or config.evaluation.latency_batch is None):
        raise ArchSearchError(
            "search.pareto_cost=latency is the cost of a Pareto search over measured latency: it needs "
            "search.objective=pareto and evaluation.latency_batch (the batch latency is also measured at, e.g. 32)."
        )
    check_choice("search.local_edits", search.local_edits, LOCAL_EDITS)
    _optional(check_float, "search.shrink_spread", search.shrink_spread, 0)
    kernel = config.kernel
    check_int("kernel.hidden_size", kernel.hidden_size, 1)
    check_int("kernel.num_layers", kernel.num_layers, 1)
    check_float("kernel.init_scale", kernel.init_scale, 0, exclusive_minimum=True, finite=True)
    check_choice("kernel.objective", kernel.objective, OBJECTIVES)
    check_float("kernel.lr", kernel.lr, 0, exclusive_minimum=True)
    check_float("kernel.weight_decay", kernel.weight_decay, 0)
    check_int("kernel.max_steps", kernel.max_steps, 1)
    check_float("kernel.tol", kernel.tol, 0)
    check_choice("kernel.target", kernel.target, KERNEL_TARGETS)
    check_choice("kernel.width_init", kernel.width_init, WIDTH_INITS)
    check_choice("kernel.name", kernel.name, KERNEL_NAMES)
    if kernel.name != "bilstm" and (kernel.warm_start or kernel.transfer_from is not None):
        raise ArchSearchError(
            f"kernel.warm_start and kernel.transfer_from need the learned kernel (kernel.name=bilstm); the "
            f"{kernel.name!r} kernel has no network to carry over. Got kernel.name={kernel.name}."
        )
    if kernel.warm_start and kernel.transfer_from is not None:
        raise ArchSearchError(
            "kernel.warm_start starts fitted kernels from the previous step's; kernel.transfer_from uses saved "
            "kernels without fitting. Choose one."
        )
    if kernel.transfer_from is not None and not (Path(kernel.transfer_from) / "kernels").is_dir():
        raise ArchSearchError(
            "kernel.transfer_from must be the run directory of an ESNAC search (holding kernels/), got "
            f"{kernel.transfer_from!r}."
        )
    if kernel.transfer_from is not None:  # a kernel this version cannot read: said before any training
        saved = sorted((Path(kernel.transfer_from) / "kernels").glob("*/kernel*.pt"))
        if saved:
            load_kernel(saved[-1])
    check_choice("acquisition.name", config.acquisition.name, tuple(ACQUISITIONS))
    if config.acquisition.name == "random" and (kernel.warm_start or kernel.transfer_from is not None
                                                or config.search.objective == "pareto"):
        raise ArchSearchError(
            "acquisition.name=random uses no kernel, so kernel.warm_start, kernel.transfer_from and "
            "search.objective=pareto (its own acquisition) do not apply; drop them or choose acquisition.name=logei "
            "or ei."
        )
    check_choice("acquisition.method", config.acquisition.method, EDIT_OPTIMIZATION_METHODS)
    check_int("acquisition.num_candidates", config.acquisition.num_candidates, 1)
    evaluation = config.evaluation
    check_int("evaluation.epochs", evaluation.epochs, 1)
    check_float("evaluation.lr", evaluation.lr, 0, exclusive_minimum=True)
    check_float("evaluation.weight_decay", evaluation.weight_decay, 0)
    check_int("evaluation.batch_size", evaluation.batch_size, 1)
    check_choice("evaluation.loss", evaluation.loss, KD_LOSSES)
    check_float("evaluation.temperature", evaluation.temperature, 0, exclusive_minimum=True)
    _optional(check_int, "evaluation.max_batches", evaluation.max_batches, 1)
    _optional(check_int, "evaluation.workers", evaluation.workers, 1)
    _optional(check_choice, "evaluation.isolation", evaluation.isolation, ISOLATIONS)
    _device("evaluation.device", evaluation.device)
    check_choice("evaluation.backend", evaluation.backend, BACKENDS)
    check_int("evaluation.dask.workers", evaluation.dask.workers, 1)
    check_int("evaluation.dask.threads_per_worker", evaluation.dask.threads_per_worker, 1)
    check_int("evaluation.dask.gpus_per_worker", evaluation.dask.gpus_per_worker, 0)
    check_int("evaluation.dask.retries", evaluation.dask.retries, 0)
    _optional(check_int, "evaluation.latency_batch", evaluation.latency_batch, 1)
    check_choice("reward.measure", config.reward.measure, REWARD_MEASURES)
    _optional(check_float, "reward.budget", config.reward.budget, 0, exclusive_minimum=True)
    _optional(check_choice, "reward.budget_measure", config.reward.budget_measure, REWARD_MEASURES)
    check_choice("reward.kind", config.reward.kind, REWARD_KINDS)
    if config.reward.kind == "accuracy" and config.reward.budget is None:
        raise ArchSearchError(
            "reward.kind=accuracy rewards accuracy within reward.budget, and none is set: without a budget the "
            "teacher itself is the most accurate student. Set reward.budget (with reward.budget_measure) or use "
            "reward.kind=n2n."
        )
    final = config.final
    check_int("final.top_k", final.top_k, 0)
    check_int("final.epochs", final.epochs, 1)
    check_float("final.lr", final.lr, 0, exclusive_minimum=True)
    check_int("final.step_size", final.step_size, 1)
    check_int("final.batch_size", final.batch_size, 1)
    _optional(check_int, "final.max_batches", final.max_batches, 1)
    m = config.methods
    check_int("methods.epochs", m.epochs, 1)
    check_float("methods.lr", m.lr, 0, exclusive_minimum=True)
    check_int("methods.batch_size", m.batch_size, 1)
    _optional(check_int, "methods.max_batches", m.max_batches, 1)
    check_float("methods.group_lasso_strength", m.group_lasso_strength, 0)
    check_float("methods.vd_lr", m.vd_lr, 0, exclusive_minimum=True)
    check_float("methods.vd_log_sigma2_lr", m.vd_log_sigma2_lr, 0, exclusive_minimum=True)
    check_float("methods.vd_threshold", m.vd_threshold, -8, 8)
    _optional(check_float, "methods.morphnet_strength", m.morphnet_strength, 0, exclusive_minimum=True)
    check_float("methods.morphnet_threshold", m.morphnet_threshold, 0, exclusive_minimum=True)
    check_float("methods.n2n_removal_share", m.n2n_removal_share, 0, 1)
    check_int("methods.n2n_rollouts", m.n2n_rollouts, 1)
    check_choice("methods.n2n_over_budget", m.n2n_over_budget, N2N_OVER_BUDGET)
    if m.n2n_over_budget == "shaped" and config.reward.budget is None:
        raise ArchSearchError(
            "methods.n2n_over_budget=shaped shapes N2N's reward above reward.budget, and none is set. Set "
            "reward.budget (with reward.budget_measure) or use methods.n2n_over_budget=zero."
        )
    check_int("methods.evolution_offspring", m.evolution_offspring, 1)
    check_float("methods.evolution_shrink", m.evolution_shrink, 0, 1, exclusive_minimum=True, exclusive_maximum=True)
    check_int("seed", config.seed, 0)


def _teacher(teacher: TeacherConfig) -> None:
    """The teacher's kind, and its name or module; a user's module is imported here (not called)."""
    check_choice("teacher.kind", teacher.kind, TEACHER_KINDS)
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
        check_choice("teacher.name", name, TEACHER_NAMES)
        return
    names = torchvision_model_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3) if isinstance(name, str) else []
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise ArchSearchError(
            f"teacher.name={name!r} is not a torchvision classification model{hint}; accepted (teacher=torchvision): "
            f"{', '.join(names)}."
        )


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


def _optional(check: Any, key: str, value: Any, *args: Any, **kwargs: Any) -> None:
    # null is always accepted here (the schema said so); the message then names only the range
    if value is not None:
        check(key, value, *args, **kwargs)


# The schema, checked by OmegaConf.


def _structured(schema: type, values: Any) -> Any:
    """An instance of ``schema`` from ``values``, typed by OmegaConf; its errors as one line."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    _check_sections(schema, values, "")
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), values))
    except OmegaConfBaseException as error:
        raise ArchSearchError(_message(error, schema, values)) from None


def _check_types(config: Any) -> None:
    """OmegaConf's check of a config built in Python; a value OmegaConf would convert (``"no"`` to
    ``False``, ``1`` to ``True``) is an error too, since the config object keeps the original."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise ArchSearchError(f"config must be a CompressConfig, got {config!r}.")
    _compare(type(config), config, _structured(type(config), _as_dict(config)), "")


def _as_dict(config: Any) -> Any:
    # dataclasses.asdict, but a section given as something else stays as given (for the message)
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: _as_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    return config


def _compare(schema: type, given: Any, typed: Any, prefix: str) -> None:
    hints = _hints(schema)
    for f in dataclasses.fields(schema):
        key, value, converted = _join(prefix, f.name), getattr(given, f.name), getattr(typed, f.name)
        if dataclasses.is_dataclass(hints[f.name]) and isinstance(value, hints[f.name]):
            _compare(hints[f.name], value, converted, key)
        elif not _same(value, converted):
            raise ArchSearchError(f"{key} must be {_accepted(hints[f.name], f)}, got {value!r}.")


def _same(given: Any, converted: Any) -> bool:
    if isinstance(given, (list, tuple)) and isinstance(converted, list):
        return len(given) == len(converted) and all(_same(a, b) for a, b in zip(given, converted))
    if isinstance(given, bool) != isinstance(converted, bool):
        return False
    if isinstance(given, (int, float)) and isinstance(converted, (int, float)):
        return given == converted or (math.isnan(given) and math.isnan(converted))
    return type(given) is type(converted) and given == converted


def _check_sections(schema: type, values: Any, prefix: str) -> None:
    """Each section is a mapping (OmegaConf's merge error would not name it)."""
    if dataclasses.is_dataclass(values) and not isinstance(values, type):
        return
    if not isinstance(values, Mapping):
        names = [f.name for f in dataclasses.fields(schema)]
        raise ArchSearchError(f"{prefix or 'config'} must be a mapping of {names}, got {values!r}.")
    hints = _hints(schema)
    for name, value in values.items():
        if dataclasses.is_dataclass(hints.get(name)):
            _check_sections(hints[name], value, _join(prefix, name))


def _message(error: Any, schema: type, values: Any) -> str:
    """OmegaConf's error as one line: the key, the value given and what the key accepts."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    path = re.sub(r"\[[^]]*\]", "", str(error.full_key or ""))  # an item of a list: the list
    parts = path.split(".") if path else []
    section, found = schema, None
    for depth, name in enumerate(parts):
        fields = {f.name: f for f in dataclasses.fields(section)}
        if name not in fields:
            if isinstance(error, (ConfigKeyError, ConfigAttributeError)) and depth == len(parts) - 1:
                where = f"{'.'.join(parts[:-1])}: unknown key" if depth else "unknown config key"
                return f"{where} {name!r}; accepted: {sorted(fields)}."
            break
        found, hint = fields[name], _hints(section)[name]
        if depth < len(parts) - 1:
            if not dataclasses.is_dataclass(hint):
                break
            section = hint
    else:
        if found is not None:
            given = _lookup(values, parts, getattr(error, "value", None))
            return f"{path} must be {_accepted(hint, found)}, got {given!r}."
    first = str(getattr(error, "msg", "") or error).splitlines()[0].rstrip(".")
    return f"{path or 'config'}: {first}."


def _accepted(hint: Any, field_: dataclasses.Field) -> str:
    """What a field of type ``hint`` accepts, in the words of a YAML file."""
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional:
        hint = next(a for a in args if a is not type(None))
    if hint is bool:
        text = "true, false or null" if optional else "true or false"
    else:
        text = _kind(hint) + (" or null" if optional else "")
    meaning = field_.metadata.get("null")
    return f"{text} ({meaning})" if optional and meaning else text


def _kind(hint: Any) -> str:
    if typing.get_origin(hint) is list:
        item = typing.get_args(hint)[0]
        plural = {int: "integers", float: "numbers", str: "strings", bool: "booleans"}
        return f"a list of {plural.get(item, item)}"
    if dataclasses.is_dataclass(hint):
        return f"a {hint.__name__} (a mapping of {[f.name for f in dataclasses.fields(hint)]})"
    return {int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


@functools.cache
def _hints(schema: type) -> dict[str, Any]:
    return typing.get_type_hints(schema)


def _lookup(values: Any, parts: list[str], default: Any) -> Any:
    for name in parts:
        if isinstance(values, Mapping) and name in values:
            values = values[name]
        elif dataclasses.is_dataclass(values) and hasattr(values, name):
            values = getattr(values, name)
        else:
            return default
    return values


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


# Resume: what differs between two configs.


def _differences(started: Any, given: Any, prefix: str) -> list[str]:
    if isinstance(started, dict) and isinstance(given, dict):
        return [
            line for key in sorted({*started, *given})
            for line in _differences(started.get(key, _MISSING), given.get(key, _MISSING), _join(prefix, key))
        ]
    if started == given:
        return []
    return [f"{prefix}: started with {_show(started)}, given {_show(given)}"]


_MISSING = object()


def _show(value: Any) -> str:
    return "(missing)" if value is _MISSING else json.dumps(value)


__all__ = [
    "AcquisitionConfig",
    "BACKENDS",
    "CONFIG_NAME",
    "CompressConfig",
    "DaskConfig",
    "DatasetConfig",
    "EvaluationConfig",
    "FinalConfig",
    "ISOLATIONS",
    "KernelConfig",
    "LOCAL_EDITS",
    "MethodsConfig",
    "N2N_OVER_BUDGET",
    "PARETO_COSTS",
    "RESUMABLE_KEYS",
    "RewardConfig",
    "SCHEMA_NAME",
    "SEARCH_INITS",
    "SEARCH_METHODS",
    "SEARCH_OBJECTIVES",
    "SearchConfig",
    "SearchSettings",
    "TeacherConfig",
    "check_config",
    "config_differences",
    "is_resumable",
    "options_for",
    "read_saved_config",
    "register_configs",
    "upgrade_saved_config",
    "without_resumable",
]
