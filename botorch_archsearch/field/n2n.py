r"""N2N: network-to-network compression by two policy-gradient stages (Ashok et al., ICLR 2018,
"N2N Learning"; FIELD.md "N2N").

Stage 1 removes layers: a bidirectional LSTM reads a descriptor of every teacher layer and gives
each removable layer a probability of removal (:class:`RemovalPolicy`). Stage 2 shrinks channel
groups: starting from the best stage-1 child's removals, an autoregressive LSTM picks one scale per
channel group from :data:`SHRINK_SCALES` (:class:`ShrinkagePolicy`). Both learn by REINFORCE with a
moving-average baseline (:class:`Reinforce`) on the N2N reward ``C (2 - C) A / A_teacher`` of the
children, which the harness distils and records like every other method's students.

The policies are never saved: at every step they are rebuilt from the search's seed and the
journal, by replaying the updates of the earlier steps on the recorded children's actions (read
back from their edits) and rewards, so a resumed search proposes exactly what it proposed the first
time.

Example:
    >>> config.search.method = "n2n"
    >>> config.methods.n2n_rollouts = 5
    >>> result = compress(teacher, data, config)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph.arch_graph import LAYER_TYPES, ArchGraph
from botorch_archsearch.search.policies import (
    ProposalPolicy,
    SearchContext,
    SearchHistory,
    distinct_students,
    register_policy,
)
from botorch_archsearch.search.records import EvaluationRecord, Proposal
from botorch_archsearch.space import Edit, SearchSpace

logger = logging.getLogger("botorch_archsearch")

SHRINK_SCALES: tuple[float, ...] = (0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
r"""The scales the shrinkage policy chooses from (N2N's); a group's shrink ratio is ``1 - scale``."""

HIDDEN_SIZE = 30
r"""Hidden units of both policies' LSTMs (N2N's)."""

REMOVAL_LR = 3e-3
r"""Adam's learning rate of the removal policy (N2N's)."""

SHRINKAGE_LR = 0.1
r"""Adam's learning rate of the shrinkage policy (N2N's)."""

BASELINE_DECAY = 0.8
r"""The decay of the moving-average baseline: ``b <- 0.8 b + 0.2 mean(R)`` after each update."""

ROLLOUT_DRAWS = 20
r"""A step draws at most this many batches of children to find distinct new students."""


class MovingAverageBaseline:
    r"""REINFORCE's baseline: an exponential moving average of the mean reward of each update,
    ``b <- decay * b + (1 - decay) * mean(R)``, started at the first update's mean reward.

    Example:
        >>> baseline = MovingAverageBaseline(0.8)
        >>> baseline.advantages(torch.tensor([0.2, 0.4]))  # b = 0.3
        tensor([-0.1000,  0.1000])
    """

    def __init__(self, decay: float = BASELINE_DECAY) -> None:
        r"""A baseline with no value yet.

        Args:
            decay: The weight of the previous value, in ``[0, 1)``.
        """
        if not 0.0 <= decay < 1.0:
            raise ArchSearchError(f"MovingAverageBaseline: decay must lie in [0, 1), got {decay!r}.")
        self.decay = float(decay)
        self.value: float | None = None

    def advantages(self, R: Tensor) -> Tensor:
        r"""The advantages ``R - b`` of one update's rewards, then fold their mean into ``b``.

        Args:
            R: An `n` tensor of rewards.

        Returns:
            An `n` tensor ``R - b``, ``b`` the value before this update (the mean of ``R`` at the
            first update).
        """
        mean = float(R.mean())
        b = mean if self.value is None else self.value
        self.value = self.decay * b + (1.0 - self.decay) * mean
        return R - b


def reinforce_loss(log_probs: Tensor, advantages: Tensor) -> Tensor:
    r"""REINFORCE's loss ``-(1/n) sum_i (R_i - b) log pi(a_i)``, whose gradient is the negated
    policy-gradient estimate.

    Args:
        log_probs: An `n` tensor: each child's log-probability of all its actions.
        advantages: An `n` tensor ``R_i - b`` (no gradient flows through it).

    Returns:
        The scalar loss.
    """
    return -(advantages.detach() * log_probs).mean()


class RemovalPolicy(nn.Module):
    r"""N2N's layer-removal policy: a bidirectional LSTM over the teacher's layer descriptors, a
    linear head per removable layer, ``pi(a) = prod_j sigma(z_j)^{a_j} (1 - sigma(z_j))^{1 - a_j}``
    (``a_j = 1``: remove layer ``j``).

    Example:
        >>> policy = RemovalPolicy(layer_descriptors(space), space.removable, generator=generator)
        >>> A = policy.sample(5, generator)  # 5 x len(space.removable) removal flags
    """

    def __init__(self, X: Tensor, removable: Sequence[int], hidden_size: int = HIDDEN_SIZE, num_layers: int = 2,
                 generator: torch.Generator | None = None) -> None:
        r"""A removal policy with weights drawn from ``generator``.

        Args:
            X: An `L x d` tensor of layer descriptors (:func:`layer_descriptors`), in layer order.
            removable: The indices (into the `L` layers) of the layers the policy may remove.
            hidden_size: Hidden units per direction of the LSTM.
            num_layers: Layers of the LSTM.
            generator: The random stream of the initial weights (PyTorch's default initialisation,
                drawn from it; the global stream is left alone).
        """
        super().__init__()
        if X.dim() != 2 or not len(removable) or not all(0 <= j < X.shape[0] for j in removable):
            raise ArchSearchError(
                f"RemovalPolicy: X must be an L x d tensor and removable non-empty indices into its {X.shape[0]} rows, "
                f"got X of shape {tuple(X.shape)} and removable {list(removable)[:10]}."
            )
        self.register_buffer("X", X.to(torch.float64))
        self.register_buffer("removable", torch.as_tensor(list(removable), dtype=torch.long))
        with torch.random.fork_rng(devices=[]):  # the modules' own initialisation is overwritten below
            self.lstm = nn.LSTM(X.shape[-1], hidden_size, num_layers=num_layers, bidirectional=True,
                                batch_first=True, dtype=torch.float64)
            self.head = nn.Linear(2 * hidden_size, 1, dtype=torch.float64)
        _initialise(self, generator)

    def logits(self) -> Tensor:
        r"""The removal logits ``z``: an `m` tensor, one per removable layer."""
        out, _ = self.lstm(self.X.unsqueeze(0))
        return self.head(out[0, self.removable]).squeeze(-1)

    def log_prob(self, A: Tensor) -> Tensor:
        r"""The log-probability of each child's removals.

        Args:
            A: An `n x m` tensor of removal flags (1: removed), one column per removable layer.

        Returns:
            An `n` tensor.
        """
        z = self.logits()
        A = A.to(z)
        return (A * nn.functional.logsigmoid(z) + (1 - A) * nn.functional.logsigmoid(-z)).sum(-1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        r"""Draw ``n`` children's removals.

        Args:
            n: The number of children.
            generator: The random stream.

        Returns:
            An `n x m` tensor of removal flags (float64, 0 or 1).
        """
        p = torch.sigmoid(self.logits())
        return (torch.rand(n, len(p), generator=generator, dtype=torch.float64) < p).to(torch.float64)


class ShrinkagePolicy(nn.Module):
    r"""N2N's shrinkage policy: an autoregressive LSTM that reads, group after group, the group's
    descriptor and the previous group's choice, and picks a scale,
    ``pi(a) = prod_g softmax(W h_g)_{a_g}``, ``h_g = LSTM([x_g, onehot(a_{g-1})], h_{g-1})``.

    Example:
        >>> policy = ShrinkagePolicy(group_descriptors(space), generator=generator)
        >>> A = policy.sample(5, generator)  # 5 x space.num_groups indices into SHRINK_SCALES
    """

    def __init__(self, X: Tensor, num_choices: int = len(SHRINK_SCALES), hidden_size: int = HIDDEN_SIZE,
                 num_layers: int = 1, generator: torch.Generator | None = None) -> None:
        r"""A shrinkage policy with weights drawn from ``generator``.

        Args:
            X: A `G x d` tensor of channel-group descriptors (:func:`group_descriptors`).
            num_choices: The number of scales to choose from.
            hidden_size: Hidden units of the LSTM.
            num_layers: Layers of the LSTM.
            generator: The random stream of the initial weights.
        """
        super().__init__()
        if X.dim() != 2 or X.shape[0] < 1 or num_choices < 1:
            raise ArchSearchError(
                f"ShrinkagePolicy: X must be a G x d tensor with G >= 1 and num_choices >= 1, got X of shape "
                f"{tuple(X.shape)} and num_choices {num_choices!r}."
            )
        self.register_buffer("X", X.to(torch.float64))
        self.num_choices = int(num_choices)
        with torch.random.fork_rng(devices=[]):
            self.lstm = nn.LSTM(X.shape[-1] + num_choices + 1, hidden_size, num_layers=num_layers, batch_first=True,
                                dtype=torch.float64)
            self.head = nn.Linear(hidden_size, num_choices, dtype=torch.float64)
        _initialise(self, generator)

    def _inputs(self, previous: Tensor) -> Tensor:
        """`n x G x (d + c + 1)` inputs from the `n x G` previous choices (``num_choices``: none)."""
        n, G = previous.shape
        onehot = nn.functional.one_hot(previous, self.num_choices + 1).to(torch.float64)
        return torch.cat([self.X.expand(n, G, -1), onehot], -1)

    def log_prob(self, A: Tensor) -> Tensor:
        r"""The log-probability of each child's choices (the LSTM fed the recorded choices).

        Args:
            A: An `n x G` tensor of choices (indices into the scales).

        Returns:
            An `n` tensor.
        """
        A = A.to(torch.long)
        start = torch.full_like(A[:, :1], self.num_choices)
        out, _ = self.lstm(self._inputs(torch.cat([start, A[:, :-1]], 1)))
        logp = torch.log_softmax(self.head(out), -1)
        return logp.gather(-1, A.unsqueeze(-1)).squeeze(-1).sum(-1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        r"""Draw ``n`` children's choices, group after group.

        Args:
            n: The number of children.
            generator: The random stream.

        Returns:
            An `n x G` tensor of choices.
        """
        G = self.X.shape[0]
        previous = torch.full((n, 1), self.num_choices, dtype=torch.long)
        state = None
        out = []
        for g in range(G):
            x = torch.cat([self.X[g].expand(n, 1, -1),
                           nn.functional.one_hot(previous, self.num_choices + 1).to(torch.float64)], -1)
            h, state = self.lstm(x, state)
            cdf = torch.softmax(self.head(h[:, 0]), -1).cumsum(-1)
            u = torch.rand(n, 1, generator=generator, dtype=torch.float64)
            choice = (cdf < u).sum(-1).clamp(max=self.num_choices - 1)  # inverse CDF
            out.append(choice)
            previous = choice.unsqueeze(1)
        return torch.stack(out, 1)


class Reinforce:
    r"""REINFORCE with a moving-average baseline: one Adam step on
    ``-(1/n) sum_i (R_i - b) log pi(a_i)`` per batch of ``n`` children.

    Example:
        >>> learner = Reinforce(policy, lr=3e-3)
        >>> A = policy.sample(5, generator)
        >>> learner.update(A, torch.tensor(rewards))
    """

    def __init__(self, policy: RemovalPolicy | ShrinkagePolicy, lr: float,
                 baseline: MovingAverageBaseline | None = None) -> None:
        r"""Train ``policy``.

        Args:
            policy: The policy (a module with ``log_prob(A)``).
            lr: Adam's learning rate.
            baseline: The baseline (default: a new :class:`MovingAverageBaseline`).
        """
        self.policy = policy
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
        self.baseline = MovingAverageBaseline() if baseline is None else baseline
        self.updates = 0

    def update(self, A: Tensor, R: Tensor) -> float:
        r"""One policy-gradient step on a batch of children.

        Args:
            A: An `n x m` tensor: the children's actions.
            R: An `n` tensor: their rewards.

        Returns:
            The loss before the step.
        """
        advantages = self.baseline.advantages(R.to(torch.float64))
        self.optimizer.zero_grad()
        loss = reinforce_loss(self.policy.log_prob(A), advantages)
        loss.backward()
        self.optimizer.step()
        self.updates += 1
        return float(loss.detach())


@dataclass
class N2NState:
    r"""N2N's learners after replaying the earlier steps of a search.

    Args:
        removal: The removal policy's learner (``None`` without stage 1).
        shrinkage: The shrinkage policy's learner (``None`` without stage 2).
        fingerprints: Per replayed step, what its records were (keys, edits, rewards), to tell
            whether the history still starts with them.
    """

    removal: Reinforce | None
    shrinkage: Reinforce | None
    fingerprints: list[tuple[Any, ...]] = field(default_factory=list)


@register_policy
class N2N(ProposalPolicy):
    r"""N2N (Ashok et al., ICLR 2018): layer removal, then shrinkage, each learnt by REINFORCE on
    the reward ``C (2 - C) A / A_teacher`` of ``methods.n2n_rollouts`` children per update
    (:meth:`policy_reward`: children above the budget can instead give minus their overshoot).

    It spends ESNAC's evaluations, ``search.steps * search.num_kernels``, in
    ``ceil(evaluations / n2n_rollouts)`` steps (the last one smaller where they do not divide); the
    first ``round(n2n_removal_share * steps)`` (at least 1) remove layers, the rest shrink.

    - Stage 1 children remove the layers :class:`RemovalPolicy` samples (no shrinkage, no skips,
      the space's channel order).
    - Stage 2 children keep the removals of the best stage-1 child (the highest reward among the
      successful ones with a positive reward; none: no removal; with
      ``methods.n2n_over_budget="shaped"`` the highest :meth:`policy_reward`, so the least over
      the budget where none is within it) and shrink each channel group by
      ``1 - scale``, the scale sampled by :class:`ShrinkagePolicy`. Where a removal ties groups,
      the tied groups take the first one's ratio, so the other groups' choices change nothing.

    A teacher without a removable layer (or ``search.removal=false``) runs stage 2 only, a space
    without channel groups (or ``search.shrinkage=false``) stage 1 only.

    Children are distinct within a step: duplicates (by architecture) are drawn again, up to
    :data:`ROLLOUT_DRAWS` batches, and so are students the method evaluated at an earlier step; where
    no new student turns up, an earlier one is proposed again (the harness evaluates it again: a
    fresh sample of its reward), and where not even that fills the step, the step has fewer
    children. The children a draw rejects never reach the update, which thus learns from the
    accepted (distinct) children only: an approximation of on-policy REINFORCE that matters only
    where the policy repeats itself.
    """

    name = "n2n"

    def __init__(self, context: SearchContext) -> None:
        r"""N2N for the search of ``context``.

        Raises:
            ArchSearchError: If the space offers neither removable layers nor channel groups.
        """
        super().__init__(context)
        space = context.space
        self.removable: tuple[int, ...] = tuple(space.removable) if space.removal else ()
        self.num_groups: int = space.num_groups if space.shrinkage else 0
        if not self.removable and not self.num_groups:
            raise ArchSearchError(
                "n2n: the teacher's search space has no removable layer and no channel group to shrink (search.removal="
                f"{space.removal}, search.shrinkage={space.shrinkage}, {len(space.removable)} removable layers, "
                f"{space.num_groups} channel groups); N2N has nothing to search."
            )
        if not self.removable:
            logger.info("n2n: %s; stage 1 (layer removal) is skipped, every step shrinks channel groups",
                        "search.removal=false" if not space.removal else "the teacher has no removable layer")
        elif not self.num_groups:
            logger.info("n2n: %s; stage 2 (shrinkage) is skipped, every step removes layers",
                        "search.shrinkage=false" if not space.shrinkage else "the teacher has no channel group")
        self._layer_X = layer_descriptors(space.graph, space.removable) if self.removable else None
        self._group_X = group_descriptors(space) if self.num_groups else None
        self._state: N2NState | None = None

    @property
    def per_step(self) -> int:
        r"""``methods.n2n_rollouts``: the children of one policy update."""
        return self.context.config.methods.n2n_rollouts

    @property
    def num_evaluations(self) -> int:
        r"""ESNAC's number of evaluations: ``search.steps * search.num_kernels``."""
        s = self.context.config.search
        return s.steps * s.num_kernels

    def num_steps(self, history: SearchHistory | None = None) -> int:
        r"""``ceil(num_evaluations / n2n_rollouts)`` policy updates."""
        return math.ceil(self.num_evaluations / self.per_step)

    @property
    def removal_steps(self) -> int:
        r"""The steps of stage 1: ``round(n2n_removal_share * num_steps)`` (halves up), at least 1;
        0 without removable layers, all without channel groups."""
        n = self.num_steps()
        if not self.removable:
            return 0
        if not self.num_groups:
            return n
        share = self.context.config.methods.n2n_removal_share
        return min(n, max(1, math.floor(share * n + 0.5)))

    def stage(self, step: int) -> int:
        r"""The stage of ``step``: 1 (layer removal) or 2 (shrinkage)."""
        return 1 if step <= self.removal_steps else 2

    def step_size(self, step: int) -> int:
        r"""The children of ``step``: ``n2n_rollouts``, fewer at the last step where the
        evaluations do not divide."""
        return min(self.per_step, self.num_evaluations - self.per_step * (step - 1))

    def propose(self, history: SearchHistory, step: int, generator: torch.Generator) -> list[Proposal]:
        state = self.policy_state(history, step)
        space, k = self.context.space, self.step_size(step)
        seen = {r.key for r in history.of(self.name, before=step)}
        if self.stage(step) == 1:
            policy = state.removal.policy

            def edit(a: Tensor) -> Edit:
                return self.removal_edit(a)
        else:
            policy = state.shrinkage.policy
            mask = self.base_mask(history, step)

            def edit(a: Tensor) -> Edit:
                return self.shrinkage_edit(mask, a)
        students = distinct_students(space, lambda: [edit(a) for a in policy.sample(k, generator)], k, seen,
                                     tries=ROLLOUT_DRAWS)
        return [Proposal(s) for s in students]

    def removal_edit(self, a: Tensor) -> Edit:
        r"""A stage-1 child: remove the removable layers flagged in ``a`` (an `m` tensor)."""
        space = self.context.space
        mask = [False] * space.graph.num_layers
        for j, flag in zip(self.removable, a.tolist()):
            mask[j] = bool(flag)
        return Edit(tuple(mask), (0.0,) * space.num_groups, (), space.channel_order)

    def shrinkage_edit(self, mask: tuple[bool, ...], a: Tensor) -> Edit:
        r"""A stage-2 child: removals ``mask``, each group shrunk by ``1 - SHRINK_SCALES[a_g]`` (``a``
        a `G` tensor of choices)."""
        return Edit(mask, tuple(1.0 - SHRINK_SCALES[i] for i in a.tolist()), (), self.context.space.channel_order)

    def base_mask(self, history: SearchHistory, step: int) -> tuple[bool, ...]:
        r"""The removals of stage 2: those of the best stage-1 child before ``step`` (the highest
        reward, the earliest of ties, among the successful children with a positive reward), or
        none; with ``methods.n2n_over_budget="shaped"``, of the highest :meth:`policy_reward`."""
        stage1 = [r for r in history.of(self.name, before=min(step, self.removal_steps + 1), ok=True)
                  if r.reward > 0 or self.policy_reward(r) < 0]
        L = self.context.space.graph.num_layers
        if not stage1:
            return (False,) * L
        best = max(stage1, key=self.policy_reward)
        removed = set(_edit_of(best)["remove"])
        return tuple(j in removed for j in range(L))

    def policy_reward(self, record: EvaluationRecord) -> float:
        r"""What the policies learn from ``record``: its reward, or with ``methods.n2n_over_budget=
        "shaped"`` and the child above ``reward.budget``, ``-(size / budget - 1)`` (minus its
        relative overshoot; a failed child keeps its reward, 0).

        Example:
            >>> policy.policy_reward(record)  # FLOPs budget 1000, the child has 1500 FLOPs
            -0.5
        """
        config = self.context.config
        budget = config.reward.budget
        if config.methods.n2n_over_budget != "shaped" or budget is None or record.status != "ok":
            return record.reward
        measure = config.reward.budget_measure or config.reward.measure
        size = record.params if measure == "params" else record.flops
        return record.reward if size is None or size <= budget else -(size / budget - 1.0)

    def policy_state(self, history: SearchHistory, step: int) -> N2NState:
        r"""The learners before ``step``: initialised from the search's seed, then updated once per
        earlier step on its recorded children (their actions read back from their edits, their
        rewards from the journal), in order. Replayed updates are kept and reused while the
        history still starts with the same records, which gives the same parameters bit for bit.

        Args:
            history: The search's history.
            step: The step about to be proposed.

        Returns:
            The learners.

        Raises:
            ArchSearchError: If a record's edit is not one N2N proposes (a journal of another
                search).
        """
        fingerprints = [_fingerprint(history.of(self.name, step=s)) for s in range(1, step)]
        state = self._state
        if state is None or state.fingerprints != fingerprints[:len(state.fingerprints)]:
            state = self._fresh_state()
        for s in range(len(state.fingerprints) + 1, step):
            records = history.of(self.name, step=s)
            if records:
                R = torch.tensor([self.policy_reward(r) for r in records], dtype=torch.float64)
                if self.stage(s) == 1:
                    A = torch.tensor([self._removal_actions(r) for r in records], dtype=torch.float64)
                    state.removal.update(A, R)
                else:
                    A = torch.tensor([self._scale_actions(r) for r in records], dtype=torch.long)
                    state.shrinkage.update(A, R)
            state.fingerprints.append(fingerprints[s - 1])
        self._state = state
        return state

    def describe_step(self, history: SearchHistory, step: int, num_steps: int, evaluated: int,
                      seconds: float) -> str:
        line = super().describe_step(history, step, num_steps, evaluated, seconds)
        return f"{line} [stage {'1, layer removal' if self.stage(step) == 1 else '2, shrinkage'}]"

    def _fresh_state(self) -> N2NState:
        """The learners at their initial weights, drawn from the search's seed."""
        from botorch_archsearch.search.loop import derive_seed  # the loop imports the policies

        seed = self.context.config.seed
        removal = shrinkage = None
        if self.removable:
            g = torch.Generator().manual_seed(derive_seed(seed, self.name, "removal"))
            removal = Reinforce(RemovalPolicy(self._layer_X, self.removable, generator=g), REMOVAL_LR)
        if self.num_groups:
            g = torch.Generator().manual_seed(derive_seed(seed, self.name, "shrinkage"))
            shrinkage = Reinforce(ShrinkagePolicy(self._group_X, generator=g), SHRINKAGE_LR)
        return N2NState(removal, shrinkage)

    def _removal_actions(self, record: EvaluationRecord) -> list[float]:
        removed = set(_edit_of(record)["remove"])
        return [1.0 if j in removed else 0.0 for j in self.removable]

    def _scale_actions(self, record: EvaluationRecord) -> list[int]:
        ratios = np.asarray(_edit_of(record)["shrink_ratios"], dtype=np.float64)
        if ratios.shape != (self.num_groups,):
            raise ArchSearchError(
                f"n2n: journal record {record.index} has {ratios.size} shrink ratios; this space has {self.num_groups} "
                "channel groups (a journal of another search)."
            )
        scales = np.asarray(SHRINK_SCALES)
        choice = np.abs((1.0 - ratios)[:, None] - scales[None]).argmin(1)
        if np.abs(scales[choice] - (1.0 - ratios)).max() > 1e-6:
            raise ArchSearchError(
                f"n2n: journal record {record.index} shrinks by ratios {ratios.tolist()[:5]}..., not 1 - a scale of "
                f"{SHRINK_SCALES} (a journal of another search)."
            )
        return choice.tolist()


def layer_descriptors(graph: ArchGraph, removable: Sequence[int] = ()) -> Tensor:
    r"""N2N's per-layer descriptors of a graph: the layer type (one-hot over
    :data:`~botorch_archsearch.graph.arch_graph.LAYER_TYPES`), input and output channels (divided by
    the graph's largest channel count), kernel size and stride (divided by the graph's largest), and
    whether the layer is removable.

    Args:
        graph: The teacher graph.
        removable: The removable layers' indices.

    Returns:
        An `L x (len(LAYER_TYPES) + 5)` float64 tensor.
    """
    nodes = graph.nodes
    channels = max(max(n.in_channels, n.out_channels) for n in nodes) or 1
    kernel = max(n.kernel_size for n in nodes) or 1
    stride = max(n.stride for n in nodes) or 1
    removable = set(removable)
    X = torch.zeros(len(nodes), len(LAYER_TYPES) + 5, dtype=torch.float64)
    for j, n in enumerate(nodes):
        X[j, LAYER_TYPES.index(n.op)] = 1.0
        X[j, len(LAYER_TYPES):] = torch.tensor([n.in_channels / channels, n.out_channels / channels,
                                                n.kernel_size / kernel, n.stride / stride, float(j in removable)],
                                               dtype=torch.float64)
    return X


def group_descriptors(space: SearchSpace) -> Tensor:
    r"""N2N's per-channel-group descriptors: the descriptor of the group's first layer
    (:func:`layer_descriptors`), the group's channels (divided by the largest group's) and its
    number of member layers (divided by the largest group's).

    Args:
        space: The teacher's search space.

    Returns:
        A `G x (len(LAYER_TYPES) + 7)` float64 tensor.
    """
    ch = space.channels
    X = layer_descriptors(space.graph, space.removable)[list(ch.group_roots)]
    sizes = torch.tensor([float(ch.size[r]) for r in ch.group_roots], dtype=torch.float64)
    members = torch.tensor([float(len(m)) for m in ch.group_members], dtype=torch.float64)
    return torch.cat([X, (sizes / sizes.max().clamp(min=1)).unsqueeze(1),
                      (members / members.max().clamp(min=1)).unsqueeze(1)], 1)


def _initialise(module: nn.Module, generator: torch.Generator | None) -> None:
    """PyTorch's default initialisation of LSTMs and linear layers, U(-1/sqrt(h), 1/sqrt(h)) and
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn from ``generator``."""
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, nn.LSTM):
                bound = 1.0 / math.sqrt(sub.hidden_size)
            elif isinstance(sub, nn.Linear):
                bound = 1.0 / math.sqrt(sub.in_features)
            else:
                continue
            for p in sub.parameters(recurse=False):
                p.copy_((torch.rand(p.shape, generator=generator, dtype=p.dtype) * 2 - 1) * bound)


def _edit_of(record: EvaluationRecord) -> dict[str, Any]:
    if not isinstance(record.edit, dict) or "remove" not in record.edit or "shrink_ratios" not in record.edit:
        raise ArchSearchError(f"n2n: journal record {record.index} has no edit to read its actions from.")
    return record.edit


def _fingerprint(records: list[EvaluationRecord]) -> tuple[Any, ...]:
    return tuple((r.key, repr(r.edit), r.reward) for r in records)


__all__ = [
    "BASELINE_DECAY",
    "HIDDEN_SIZE",
    "MovingAverageBaseline",
    "N2N",
    "N2NState",
    "REMOVAL_LR",
    "ROLLOUT_DRAWS",
    "Reinforce",
    "RemovalPolicy",
    "SHRINKAGE_LR",
    "SHRINK_SCALES",
    "ShrinkagePolicy",
    "group_descriptors",
    "layer_descriptors",
    "reinforce_loss",
]
