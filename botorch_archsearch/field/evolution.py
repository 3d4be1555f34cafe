r"""Evolutionary synthesis (Shafiee et al., "Evolutionary Synthesis of Deep Neural Networks",
2016/2017; FIELD.md "Evolutionary synthesis"): generations of offspring synthesised from a parent,
each channel surviving with a probability proportional to its strength.

Each generation (a step of the search) synthesises ``methods.evolution_offspring`` offspring of the
parent, the teacher at first. Every channel the parent keeps survives with probability
``p_c = min(1, alpha * s_c)``, ``s_c`` its strength: the teacher's group-magnitude importance,
normalised per channel group (``space.channels.importance``). One factor ``alpha`` for the whole
network, found by bisection, makes the offspring's expected size (in the search's size measure)
``methods.evolution_shrink`` times the parent's. The offspring are distilled and scored by the
harness; the best of them becomes the next generation's parent.

Our edits keep, in each channel group, the ``k`` strongest channels (channel order
``"magnitude"``), not an arbitrary subset. An offspring therefore samples, per group, how many of
the parent's channels survive (the number of successes of the channels' Bernoulli draws, at least
one block), and keeps that many of the strongest: the same count as a sampled subset, and the
channels a subset keeps most often. An offspring thus keeps a subset of its parent's channels.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from botorch_archsearch.evaluation import reward
from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph import count_flops, count_params
from botorch_archsearch.search.policies import (
    ProposalPolicy,
    SearchContext,
    SearchHistory,
    distinct_students,
    register_policy,
)
from botorch_archsearch.search.records import EvaluationRecord, Proposal
from botorch_archsearch.space import Edit

logger = logging.getLogger("botorch_archsearch")

OFFSPRING_DRAWS = 20
r"""A generation draws at most this many batches of offspring to find distinct new students."""

BISECTION_STEPS = 100
r"""Bisection steps on the synthesis factor ``alpha`` (float64 converges well before)."""


def expected_size(P: Sequence[Tensor], costs: Sequence[float], fixed: float) -> float:
    r"""The linearised expected size ``fixed + sum_g costs_g * sum_c P_gc`` of an offspring.

    Args:
        P: Per channel group, a `k_g` tensor of survival probabilities.
        costs: Per channel group, the size one of its channels accounts for.
        fixed: The size no channel accounts for.

    Returns:
        The expected size.
    """
    return float(fixed + sum(float(c) * float(p.sum()) for c, p in zip(costs, P)))


def synthesis_probabilities(S: Sequence[Tensor], costs: Sequence[float], fixed: float,
                            target: float) -> tuple[list[Tensor], float]:
    r"""Survival probabilities ``P_gc = min(1, alpha * S_gc)`` proportional to the strengths, with
    the factor ``alpha`` (by bisection) at which the linearised expected size
    ``fixed + sum_g costs_g * sum_c P_gc`` equals ``target``.

    Args:
        S: Per channel group, a `k_g` tensor of strengths >= 0 (the parent's channels).
        costs: Per channel group, the size one of its channels accounts for (>= 0).
        fixed: The size no channel accounts for.
        target: The expected size to reach. Below ``fixed`` (every channel lost) ``alpha`` is 0;
            at or above the size with every channel of positive strength kept, the probabilities
            are 1 there.

    Returns:
        ``(P, alpha)``: per group a `k_g` float64 tensor of probabilities, and the factor.

    Example:
        >>> P, alpha = synthesis_probabilities([torch.tensor([1.0, 2.0])], [10.0], 5.0, 20.0)
        >>> alpha, P[0]  # 5 + 10 * 3 * alpha = 20
        (0.5, tensor([0.5000, 1.0000], dtype=torch.float64))
    """
    S = [torch.as_tensor(s, dtype=torch.float64) for s in S]
    if len(S) != len(costs) or any((s < 0).any() or not torch.isfinite(s).all() for s in S):
        raise ArchSearchError(
            f"synthesis_probabilities: S must hold one tensor of finite strengths >= 0 per group and costs one value "
            f"per group, got {len(S)} and {len(costs)}."
        )
    positive = torch.cat([s[s > 0] for s in S] + [torch.ones(1, dtype=torch.float64)])

    def probabilities(alpha: float) -> list[Tensor]:
        return [(alpha * s).clamp(max=1.0) for s in S]

    lo, hi = 0.0, float(1.0 / positive.min())  # at hi every channel of positive strength is kept
    if expected_size(probabilities(hi), costs, fixed) <= target:
        return probabilities(hi), hi
    if expected_size(probabilities(lo), costs, fixed) >= target:
        return probabilities(lo), lo
    for _ in range(BISECTION_STEPS):  # the expected size rises with alpha
        mid = 0.5 * (lo + hi)
        if expected_size(probabilities(mid), costs, fixed) < target:
            lo = mid
        else:
            hi = mid
    alpha = 0.5 * (lo + hi)
    return probabilities(alpha), alpha


@dataclass(frozen=True)
class Synthesis:
    r"""How a generation synthesises offspring of its parent.

    Args:
        parent: The parent's edit.
        size: The parent's size (the search's size measure).
        counts: Per channel group, the channels the parent keeps.
        minimum: Per channel group, the fewest channels an offspring keeps (one block).
        costs: Per channel group, the size one channel accounts for at the parent (the drop in
            size when the group alone falls to its minimum, per channel).
        fixed: ``size - sum_g costs_g * counts_g``.
        target: The offspring's expected size.
        probabilities: Per channel group, the survival probabilities of the parent's channels
            (strongest first).
        alpha: The common factor of the probabilities.
    """

    parent: Edit
    size: float
    counts: tuple[int, ...]
    minimum: tuple[int, ...]
    costs: tuple[float, ...]
    fixed: float
    target: float
    probabilities: tuple[Tensor, ...]
    alpha: float

    @property
    def expected_size(self) -> float:
        r"""The linearised expected size of an offspring (``target`` where reachable)."""
        return expected_size(self.probabilities, self.costs, self.fixed)


@register_policy
class EvolutionarySynthesis(ProposalPolicy):
    r"""Evolutionary synthesis (Shafiee et al.): per generation (a step; ``search.steps`` of them),
    ``methods.evolution_offspring`` offspring of the parent, each channel of the parent surviving
    with probability ``min(1, alpha * s_c)``, the expected size ``evolution_shrink`` times the
    parent's; the best offspring is the next parent.

    - Offspring keep, per channel group, a sampled number of the parent's strongest channels
      (channel order ``"magnitude"``); no layer is removed, no skip added. Sizes are linearised
      per group at the parent: one channel of group ``g`` accounts for the drop in size when
      ``g`` alone falls to one block, per channel lost (exact for a group whose layers' costs are
      linear in its channels with the other groups fixed, as with convolutions between two
      groups); the expectation of the product of two groups' counts is taken as the product of
      their expectations. As shrinkage compounds over a layer's input and output groups, the
      realised sizes lie somewhat above the linearised expectation.
    - The next parent is the offspring of the generation with the highest N2N reward
      ``C (2 - C) A / A_teacher`` *without* the budget (recomputed from the record's accuracy and
      size), so that offspring still above ``reward.budget`` can be parents on the way down;
      failed offspring are not candidates. A generation with no successful offspring keeps its
      parent.
    - With ``reward.budget`` set, the method stops once its parent is within the budget (in the
      size measure): the remaining generations propose nothing (Shafiee et al. synthesise until
      the target is met). Without a budget it runs every generation.
    - Offspring are distinct within a generation: duplicates (by architecture) are drawn again,
      up to :data:`OFFSPRING_DRAWS` batches, and so are students of earlier generations; where no new
      student turns up, an earlier one is proposed again, and where not even that fills the
      generation, it has fewer offspring.

    It evaluates ``search.steps * evolution_offspring`` students, against ESNAC's
    ``search.steps * search.num_kernels``.
    """

    name = "evolutionary_synthesis"

    def __init__(self, context: SearchContext) -> None:
        r"""Evolutionary synthesis for the search of ``context``.

        Raises:
            ArchSearchError: If the search space has no channel importance or no channel group.
        """
        super().__init__(context)
        space = context.space
        if not space.has_importance:
            raise ArchSearchError(
                "evolutionary_synthesis: the search space has no channel importance (the channels' strengths); make "
                "it with SearchSpace(graph, channel_importance=channel_importance(graph, teacher))."
            )
        if space.num_groups == 0:
            raise ArchSearchError("evolutionary_synthesis: the teacher has no channel group to synthesise.")

    @property
    def per_step(self) -> int:
        r"""``methods.evolution_offspring``: the offspring of one generation."""
        return self.context.config.methods.evolution_offspring

    def num_steps(self, history: SearchHistory | None = None) -> int:
        r"""``search.steps`` generations."""
        return self.context.config.search.steps

    def size(self, edit: Edit) -> int:
        r"""The size of ``edit``'s student in the search's size measure."""
        count = count_params if self.context.size_measure == "params" else count_flops
        return count(self.context.space.apply(edit))

    def fitness(self, record: EvaluationRecord) -> float:
        r"""The N2N reward ``C (2 - C) A / A_teacher`` of a successful record without the budget
        (``reward.measure``); ``-inf`` for a failed one."""
        if not record.ok or record.accuracy is None:
            return float("-inf")
        teacher, measure = self.context.teacher, self.context.config.reward.measure
        return reward(record.accuracy, teacher["val_accuracy"], record.params, teacher["params"], flops=record.flops,
                      teacher_flops=teacher["flops"], measure=measure)

    def parent(self, history: SearchHistory, step: int) -> tuple[Edit, EvaluationRecord | None]:
        r"""The parent of generation ``step``: the teacher at first, then each generation's best
        offspring (by :meth:`fitness`; the earliest of ties), or the previous parent where a
        generation has no successful offspring.

        Returns:
            ``(edit, record)``: the parent's edit and its record (``None``: the teacher).
        """
        space = self.context.space
        edit = Edit((False,) * space.graph.num_layers, (0.0,) * space.num_groups, (), "magnitude")
        record = None
        for generation in range(1, step):
            offspring = history.of(self.name, step=generation, ok=True)
            if offspring:
                record = max(offspring, key=self.fitness)
                edit = Edit.from_dict(record.edit)
        return edit, record

    def within_budget(self, record: EvaluationRecord | None) -> bool:
        r"""Whether a parent (``None``: the teacher) is within ``reward.budget`` (``False`` without
        one)."""
        budget, measure = self.context.config.reward.budget, self.context.size_measure
        if budget is None:
            return False
        size = self.context.teacher[measure] if record is None else getattr(record, measure)
        return size is not None and size <= budget

    def synthesis(self, parent: Edit) -> Synthesis:
        r"""The synthesis of offspring of ``parent``: its channels' survival probabilities, scaled
        so that the linearised expected size is ``evolution_shrink`` times the parent's.

        Args:
            parent: The parent's edit (no removals, no skips, channel order ``"magnitude"``).

        Returns:
            The :class:`Synthesis`.
        """
        space, ch = self.context.space, self.context.space.channels
        roots = ch.group_roots
        plan = space.plan(parent)
        counts = tuple(int(plan.counts[r]) for r in roots)
        size = float(self.size(parent))
        minimum, costs = [], []
        for g, r in enumerate(roots):
            low = ch.keep_count(1.0 - 1.0 / ch.size[r], ch.size[r], ch.blocks[r])
            minimum.append(min(low, counts[g]))
            if low >= counts[g]:
                costs.append(0.0)
                continue
            ratios = list(parent.shrink_ratios)
            ratios[g] = 1.0 - low / ch.size[r]
            shrunk = Edit(parent.remove_mask, tuple(ratios), parent.skips, parent.channel_order)
            lost = counts[g] - int(space.plan(shrunk).counts[r])
            costs.append((size - self.size(shrunk)) / lost if lost > 0 else 0.0)
        fixed = size - sum(c * k for c, k in zip(costs, counts))
        S = [torch.as_tensor(ch.importance[g][plan.indices(r)], dtype=torch.float64) for g, r in enumerate(roots)]
        S = [s.sort(descending=True).values for s in S]
        target = self.context.config.methods.evolution_shrink * size
        P, alpha = synthesis_probabilities(S, costs, fixed, target)
        return Synthesis(parent, size, counts, tuple(minimum), tuple(costs), fixed, target, tuple(P), alpha)

    def offspring(self, synthesis: Synthesis, n: int, generator: torch.Generator) -> list[Edit]:
        r"""Draw ``n`` offspring edits: per group, the number of the parent's channels whose
        Bernoulli draws succeed (at least the group's minimum), its strongest ones kept.

        Args:
            synthesis: The generation's synthesis.
            n: The number of offspring.
            generator: The random stream.

        Returns:
            ``n`` edits (channel order ``"magnitude"``).
        """
        ch = self.context.space.channels
        sizes = [ch.size[r] for r in ch.group_roots]
        kept = np.stack([
            (torch.rand(n, len(p), generator=generator, dtype=torch.float64) < p).sum(1).numpy()
            for p in synthesis.probabilities
        ], 1)
        kept = np.maximum(kept, np.asarray(synthesis.minimum))
        parent = synthesis.parent
        return [Edit(parent.remove_mask, tuple(1.0 - k / c for k, c in zip(row.tolist(), sizes)), parent.skips,
                     "magnitude") for row in kept]

    def propose(self, history: SearchHistory, step: int, generator: torch.Generator) -> list[Proposal]:
        parent, record = self.parent(history, step)
        if self.within_budget(record):
            logger.info("%s generation %d: the parent (%s) is within reward.budget=%s; no more offspring", self.name,
                        step, "the teacher" if record is None else f"evaluation {record.index}",
                        self.context.config.reward.budget)
            return []
        synthesis = self.synthesis(parent)
        k = self.per_step
        seen = {r.key for r in history.of(self.name, before=step)}
        students = distinct_students(self.context.space, lambda: self.offspring(synthesis, k, generator), k, seen,
                                     tries=OFFSPRING_DRAWS)
        return [Proposal(s) for s in students]


__all__ = [
    "BISECTION_STEPS",
    "EvolutionarySynthesis",
    "OFFSPRING_DRAWS",
    "Synthesis",
    "expected_size",
    "synthesis_probabilities",
]
