r"""Tests of evolutionary synthesis (botorch_archsearch/field/evolution.py): the synthesis
probabilities by hand, offspring as subsets of their parent, the next parent as the best offspring
without the budget, and generations through ``compress`` with resume."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.field.evolution import EvolutionarySynthesis, expected_size, synthesis_probabilities
from botorch_archsearch.graph import count_flops, count_params, trace
from botorch_archsearch.search import EvaluationRecord, SearchContext, SearchHistory, compress
from botorch_archsearch.space import Edit, SearchSpace, channel_importance


@pytest.fixture(scope="module")
def teacher_space(search_teacher):
    graph = trace(search_teacher.model, torch.zeros(1, 3, 16, 16))
    return SearchSpace(graph, channel_importance=channel_importance(graph, search_teacher.model))


def _context(space, config):
    teacher = {"name": "t", "params": count_params(space.graph), "flops": count_flops(space.graph),
               "val_accuracy": 0.8}
    return SearchContext(space, config, teacher, None)


def _identity(space):
    return Edit((False,) * space.graph.num_layers, (0.0,) * space.num_groups, (), "magnitude")


def _counts(space, edit):
    plan = space.plan(edit)
    return np.array([plan.counts[r] for r in space.channels.group_roots])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_synthesis_probabilities_by_hand(dtype):
    # two groups: strengths (1, 2) and (1, 1, 2), 10 and 5 per channel, 20 fixed; full size 55.
    # E(alpha) = 20 + 10 * 3 alpha + 5 * 4 alpha = 20 + 50 alpha = 0.7 * 55 = 38.5 -> alpha = 0.37
    S = [torch.tensor([1.0, 2.0], dtype=dtype), torch.tensor([1.0, 1.0, 2.0], dtype=dtype)]
    P, alpha = synthesis_probabilities(S, [10.0, 5.0], 20.0, 0.7 * 55)
    assert alpha == pytest.approx(0.37, abs=1e-12)
    assert P[0].tolist() == pytest.approx([0.37, 0.74], abs=1e-12)
    assert P[1].tolist() == pytest.approx([0.37, 0.37, 0.74], abs=1e-12)
    assert expected_size(P, [10.0, 5.0], 20.0) == pytest.approx(38.5, abs=1e-9)
    # a capped channel: strengths (1, 4), 10 per channel: alpha + min(1, 4 alpha) = 1.5 -> alpha = 0.5
    P, alpha = synthesis_probabilities([torch.tensor([1.0, 4.0], dtype=dtype)], [10.0], 0.0, 15.0)
    assert alpha == pytest.approx(0.5, abs=1e-12) and P[0].tolist() == pytest.approx([0.5, 1.0], abs=1e-12)
    # out of reach: everything kept (a channel of strength 0 never survives), or nothing
    P, _ = synthesis_probabilities([torch.tensor([0.0, 4.0], dtype=dtype)], [10.0], 0.0, 50.0)
    assert P[0].tolist() == [0.0, 1.0]
    P, alpha = synthesis_probabilities([torch.tensor([1.0, 4.0], dtype=dtype)], [10.0], 30.0, 15.0)
    assert alpha == 0.0 and P[0].tolist() == [0.0, 0.0]
    with pytest.raises(ArchSearchError, match=r"one tensor of finite strengths >= 0 per group"):
        synthesis_probabilities([torch.tensor([-1.0])], [1.0], 0.0, 1.0)


def test_the_synthesis_expects_the_shrunk_size_of_the_parent(teacher_space, small_config):
    config = small_config(method="evolutionary_synthesis")
    policy = EvolutionarySynthesis(_context(teacher_space, config))
    space, ch = teacher_space, teacher_space.channels
    synthesis = policy.synthesis(_identity(space))
    size = count_params(space.graph)
    assert synthesis.size == size and synthesis.counts == tuple(ch.size[r] for r in ch.group_roots)
    assert synthesis.expected_size == pytest.approx(0.7 * size, rel=1e-9)
    assert synthesis.target == pytest.approx(0.7 * size)
    # the linearisation by hand: group 0 alone at one channel, per channel lost
    ratios = [0.0] * space.num_groups
    ratios[0] = 1 - 1 / ch.size[ch.group_roots[0]]
    one = count_params(space.apply(Edit((False,) * space.graph.num_layers, tuple(ratios), (), "magnitude")))
    assert synthesis.costs[0] == pytest.approx((size - one) / (synthesis.counts[0] - 1))
    assert synthesis.fixed + sum(c * k for c, k in zip(synthesis.costs, synthesis.counts)) == pytest.approx(size)
    # probabilities proportional to the parent's channel strengths, one factor for all groups
    for g, p in enumerate(synthesis.probabilities):
        strengths = np.sort(ch.importance[g])[::-1]
        assert p.numpy() == pytest.approx(np.minimum(1.0, synthesis.alpha * strengths))
    # the offspring's mean linearised size is the target (up to the one-channel floor and rounding)
    edits = policy.offspring(synthesis, 300, torch.Generator().manual_seed(0))
    linear = [synthesis.fixed + float(np.dot(synthesis.costs, _counts(space, e))) for e in edits]
    assert np.mean(linear) == pytest.approx(0.7 * size, rel=0.03)
    assert all(not e.skips and e.num_removed == 0 and e.channel_order == "magnitude" for e in edits)


def test_offspring_keep_a_subset_of_their_parent_s_channels(teacher_space, small_config):
    policy = EvolutionarySynthesis(_context(teacher_space, small_config(method="evolutionary_synthesis")))
    space = teacher_space
    g = torch.Generator().manual_seed(1)
    parent = policy.offspring(policy.synthesis(_identity(space)), 1, g)[0]
    parent_plan = space.plan(parent)
    synthesis = policy.synthesis(parent)
    assert synthesis.counts == tuple(_counts(space, parent))
    assert synthesis.expected_size == pytest.approx(0.7 * count_params(space.apply(parent)), rel=1e-9)
    for edit in policy.offspring(synthesis, 20, g):
        plan = space.plan(edit)
        assert (_counts(space, edit) <= _counts(space, parent)).all()
        for r in space.channels.group_roots:  # the strongest of the parent's channels
            assert not (plan.mask(r) & ~parent_plan.mask(r)).any()


def _record(history, step, student, accuracy, budget=None, status="ok"):
    params = count_params(student.graph)
    return EvaluationRecord(index=len(history), method="evolutionary_synthesis", step=step, key=student.key(),
                            architecture={}, status=status, reward=0.0, params=params,
                            accuracy=accuracy if status == "ok" else None, seconds=0.0,
                            flops=count_flops(student.graph), edit=student.edit.to_dict())


def test_the_next_parent_is_the_best_offspring_without_the_budget(teacher_space, small_config, caplog):
    config = small_config(method="evolutionary_synthesis")
    config.methods.evolution_offspring = 3
    config.reward.budget = 1000.0  # every offspring is over it: their recorded rewards are 0
    context = _context(teacher_space, config)
    policy = EvolutionarySynthesis(context)
    history = SearchHistory()
    proposals = policy.propose(history, 1, torch.Generator().manual_seed(0))
    assert len(proposals) == 3 and len({p.student.key() for p in proposals}) == 3
    students = sorted((p.student for p in proposals), key=lambda s: -count_params(s.graph))
    for student, accuracy, status in zip(students, (0.8, 0.3, 0.9), ("ok", "ok", "failed")):
        history.add(_record(history, 1, student, accuracy, status=status), student)
    teacher = context.teacher["params"]

    def f(r):  # C (2 - C) A / A_teacher, by hand
        c = 1 - r.params / teacher
        return c * (2 - c) * r.accuracy / 0.8

    ok = [r for r in history.records if r.ok]
    best = max(ok, key=f)
    assert [policy.fitness(r) for r in ok] == pytest.approx([f(r) for r in ok])
    assert policy.fitness(history.records[2]) == float("-inf")
    edit, record = policy.parent(history, 2)
    assert record is best and edit == history.students[best.index].edit
    assert policy.parent(history, 1) == (_identity(teacher_space), None)
    # generation 2 synthesises from that parent; a generation with no successful offspring keeps it
    proposals = policy.propose(history, 2, torch.Generator().manual_seed(1))
    for p in proposals:
        assert (_counts(teacher_space, p.student.edit) <= _counts(teacher_space, edit)).all()
        history.add(_record(history, 2, p.student, 0.5, status="failed"), p.student)
    assert policy.parent(history, 3) == (edit, best)
    # once the parent is within the budget, no more offspring
    config.reward.budget = float(best.params)
    with caplog.at_level(logging.INFO, logger="botorch_archsearch"):
        assert policy.propose(history, 3, torch.Generator().manual_seed(2)) == []
    assert "within reward.budget" in caplog.text


def test_evolutionary_synthesis_refuses_a_space_without_strengths(teacher_space, small_config):
    space = SearchSpace(teacher_space.graph)
    with pytest.raises(ArchSearchError, match=r"no channel importance"):
        EvolutionarySynthesis(_context(space, small_config(method="evolutionary_synthesis")))


def test_evolutionary_synthesis_end_to_end_through_compress_and_resume(tmp_path, small_config, search_data,
                                                                       search_teacher, teacher_space):
    config = small_config(method="evolutionary_synthesis", steps=2)  # 2 generations of 2 offspring
    config.methods.evolution_offspring = 2
    result = compress(search_teacher, search_data, config, run_dir=tmp_path)
    records = result.records
    assert [(r.method, r.step) for r in records] == [("evolutionary_synthesis", s) for s in (1, 1, 2, 2)]
    assert len({r.key for r in records}) == 4
    for r in records:
        assert r.edit["remove"] == [] and r.edit["skips"] == [] and r.edit["channel_order"] == "magnitude"
    teacher = result.teacher

    def f(r):
        c = 1 - r.params / teacher["params"]
        return c * (2 - c) * r.accuracy / teacher["val_accuracy"]

    first = [r for r in records[:2] if r.ok]
    parent = Edit.from_dict(max(first, key=f).edit) if first else _identity(teacher_space)
    for r in records:
        assert (_counts(teacher_space, Edit.from_dict(r.edit)) <= _counts(teacher_space, _identity(teacher_space))).all()
    for r in records[2:]:
        assert (_counts(teacher_space, Edit.from_dict(r.edit)) <= _counts(teacher_space, parent)).all()
    assert max(r.params for r in records[2:]) < teacher["params"]
    # resumed from its first record, it proposes the same students again
    journal = tmp_path / "journal.jsonl"
    journal.write_text(journal.read_text().splitlines(keepends=True)[0])
    (tmp_path / "final.jsonl").unlink()
    resumed = compress(search_teacher, search_data, config, run_dir=tmp_path, resume=True)
    assert [r.key for r in resumed.records] == [r.key for r in records]
    assert [r.edit for r in resumed.records] == [r.edit for r in records]
