r"""Tests of N2N (botorch_archsearch/field/n2n.py): the REINFORCE gradient and baseline by hand,
the policies rebuilt from the history bit for bit, and the two stages through ``compress`` with
resume."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from torch import nn

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.field.n2n import (
    N2N,
    SHRINK_SCALES,
    MovingAverageBaseline,
    Reinforce,
    RemovalPolicy,
    ShrinkagePolicy,
    group_descriptors,
    layer_descriptors,
    reinforce_loss,
)
from botorch_archsearch.graph import count_params, trace
from botorch_archsearch.search import EvaluationRecord, SearchContext, SearchHistory, compress
from botorch_archsearch.space import SearchSpace, channel_importance


@pytest.fixture(scope="module")
def teacher_graph(search_teacher):
    graph = trace(search_teacher.model, torch.zeros(1, 3, 16, 16))
    return graph, channel_importance(graph, search_teacher.model)


def _context(graph_and_importance, config, **space_options):
    graph, importance = graph_and_importance
    space = SearchSpace(graph, channel_importance=importance, **space_options)
    teacher = {"name": "t", "params": count_params(graph), "flops": 1, "val_accuracy": 0.8}
    return SearchContext(space, config, teacher, None)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("advantage", [0.3, -0.2])
def test_reinforce_gradient_of_one_bernoulli_logit_by_hand(dtype, advantage):
    # d/dtheta [-(R - b) log sigma(theta)] = -(R - b) (1 - sigma(theta))
    theta = torch.tensor(0.7, dtype=dtype, requires_grad=True)
    adv = torch.tensor([advantage], dtype=dtype)
    reinforce_loss(nn.functional.logsigmoid(theta)[None], adv).backward()
    sigma = 1 / (1 + math.exp(-0.7))
    assert theta.grad.item() == pytest.approx(-advantage * (1 - sigma), rel=1e-6)
    # the removal policy's head bias is its logit's offset: the same gradient, for either action
    policy = RemovalPolicy(torch.rand(1, 3, generator=torch.Generator().manual_seed(1)), [0], hidden_size=4,
                           generator=torch.Generator().manual_seed(0))
    for action, dlogp in ((1.0, lambda s: 1 - s), (0.0, lambda s: -s)):
        policy.zero_grad()
        z = policy.logits().detach().item()
        s = 1 / (1 + math.exp(-z))
        reinforce_loss(policy.log_prob(torch.tensor([[action]])), torch.tensor([advantage],
                                                                                dtype=torch.float64)).backward()
        assert policy.head.bias.grad.item() == pytest.approx(-advantage * dlogp(s), rel=1e-9)


def test_moving_average_baseline_by_hand():
    baseline = MovingAverageBaseline(0.8)
    assert baseline.value is None
    A = baseline.advantages(torch.tensor([0.2, 0.4], dtype=torch.float64))  # b = the first mean, 0.3
    assert A.tolist() == pytest.approx([-0.1, 0.1]) and baseline.value == pytest.approx(0.3)
    A = baseline.advantages(torch.tensor([0.5, 0.7], dtype=torch.float64))  # b = 0.3
    assert A.tolist() == pytest.approx([0.2, 0.4]) and baseline.value == pytest.approx(0.8 * 0.3 + 0.2 * 0.6)
    A = baseline.advantages(torch.tensor([0.1], dtype=torch.float64))  # b = 0.36
    assert A.tolist() == pytest.approx([-0.26]) and baseline.value == pytest.approx(0.8 * 0.36 + 0.2 * 0.1)
    with pytest.raises(ArchSearchError, match=r"decay must lie in \[0, 1\), got 1\.0"):
        MovingAverageBaseline(1.0)


@pytest.mark.parametrize("kind", ["removal", "shrinkage"])
def test_one_update_favours_the_better_child_and_disfavours_the_worse(kind):
    g = torch.Generator().manual_seed(0)
    if kind == "removal":  # a removal policy over 2 of 3 layers
        policy = RemovalPolicy(torch.rand(3, 4, generator=g), [0, 2], hidden_size=5, generator=g)
        A = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    else:  # a shrinkage policy over 2 groups, 3 scales
        policy = ShrinkagePolicy(torch.rand(2, 4, generator=g), num_choices=3, hidden_size=5, generator=g)
        A = torch.tensor([[0, 1], [2, 2]])
    learner = Reinforce(policy, lr=1e-2)
    before = policy.log_prob(A).detach()
    learner.update(A, torch.tensor([0.9, 0.1]))  # b = 0.5: advantages +0.4 and -0.4
    after = policy.log_prob(A).detach()
    assert after[0] > before[0] and after[1] < before[1]
    assert learner.baseline.value == pytest.approx(0.5) and learner.updates == 1


def test_policies_are_seeded_by_their_generator_alone():
    X = torch.rand(4, 3, generator=torch.Generator().manual_seed(2))
    state = torch.random.get_rng_state()
    a = RemovalPolicy(X, [1, 2], generator=torch.Generator().manual_seed(5))
    b = RemovalPolicy(X, [1, 2], generator=torch.Generator().manual_seed(5))
    assert torch.equal(state, torch.random.get_rng_state())  # the global stream is left alone
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    s = ShrinkagePolicy(X, generator=torch.Generator().manual_seed(5))
    A = s.sample(6, torch.Generator().manual_seed(0))
    assert A.shape == (6, 4) and A.min() >= 0 and A.max() < len(SHRINK_SCALES)
    assert torch.equal(A, s.sample(6, torch.Generator().manual_seed(0)))
    assert torch.isfinite(s.log_prob(A)).all() and (s.log_prob(A) < 0).all()
    # the autoregressive log-probabilities sum to one over every choice sequence of a 2-group policy
    small = ShrinkagePolicy(X[:2], num_choices=3, generator=torch.Generator().manual_seed(5))
    every = torch.tensor([[i, j] for i in range(3) for j in range(3)])
    assert small.log_prob(every).exp().sum().item() == pytest.approx(1.0, abs=1e-12)


def test_descriptors_read_the_teacher_graph(teacher_graph):
    graph, importance = teacher_graph
    space = SearchSpace(graph, channel_importance=importance)
    X = layer_descriptors(graph, space.removable)
    assert X.shape == (graph.num_layers, 28)
    assert X[:, :23].sum(1).eq(1).all()  # one layer type each
    assert X[:, -1].nonzero().squeeze(1).tolist() == list(space.removable)
    assert X[:, 23:27].max() == 1 and X[:, 23:27].min() >= 0
    assert group_descriptors(space).shape == (space.num_groups, 30)


def _reward(student, teacher_params):
    """A stand-in reward: the N2N reward with an accuracy that falls with every removed layer."""
    c = 1 - count_params(student.graph) / teacher_params
    return c * (2 - c) * 0.97 ** student.edit.num_removed


def _record(history, method, step, student, reward, status="ok"):
    return EvaluationRecord(index=len(history), method=method, step=step, key=student.key(), architecture={},
                            status=status, reward=reward if status == "ok" else 0.0, params=count_params(student.graph),
                            accuracy=0.5 if status == "ok" else None, seconds=0.0, edit=student.edit.to_dict())


def _parameters(state):
    return [p.detach().clone() for learner in (state.removal, state.shrinkage) for p in learner.policy.parameters()]


def test_policies_rebuilt_from_the_history_equal_the_live_ones_bit_for_bit(teacher_graph, small_config):
    config = small_config(method="n2n", steps=4)  # 8 evaluations: 4 steps of 2, 2 removing, 2 shrinking
    config.methods.n2n_rollouts = 2
    context = _context(teacher_graph, config)
    space, teacher_params = context.space, context.teacher["params"]
    policy = N2N(context)
    assert (policy.num_steps(), policy.removal_steps, policy.per_step) == (4, 2, 2)
    live = N2N(context).policy_state(SearchHistory(), 1)  # fresh learners, updated by hand below
    history = SearchHistory()
    for step in range(1, 5):
        proposals = policy.propose(history, step, torch.Generator().manual_seed(step))
        assert len(proposals) == 2 and len({p.student.key() for p in proposals}) == 2
        R = []
        for i, p in enumerate(proposals):
            failed = step == 3 and i == 1  # a failed child: reward 0
            r = 0.0 if failed else _reward(p.student, teacher_params)
            history.add(_record(history, "n2n", step, p.student, r, "failed" if failed else "ok"), p.student)
            R.append(r)
        edits = [p.student.edit for p in proposals]
        if step <= 2:  # stage 1: removals only
            assert all(e.shrink_ratios == (0.0,) * space.num_groups and not e.skips for e in edits)
            assert all(e.num_removed > 0 for e in edits)
            A = torch.tensor([[float(e.remove_mask[j]) for j in space.removable] for e in edits], dtype=torch.float64)
            live.removal.update(A, torch.tensor(R, dtype=torch.float64))
        else:  # stage 2: the best stage-1 child's removals, shrunk by 1 - a scale
            best = max(history.of("n2n", before=3), key=lambda r: r.reward)
            assert all([j for j, f in enumerate(e.remove_mask) if f] == best.edit["remove"] for e in edits)
            scales = [[min(range(7), key=lambda i: abs(SHRINK_SCALES[i] - (1 - x))) for x in e.shrink_ratios]
                      for e in edits]
            assert all(abs(1 - x - SHRINK_SCALES[i]) < 1e-12 for e, a in zip(edits, scales)
                       for x, i in zip(e.shrink_ratios, a))
            live.shrinkage.update(torch.tensor(scales), torch.tensor(R, dtype=torch.float64))
    cached = policy.policy_state(history, 5)  # replayed step by step as the search went
    fresh = N2N(context).policy_state(history, 5)  # replayed at once, from the seed
    expected = _parameters(live)
    for state in (cached, fresh):
        assert all(torch.equal(p, q) for p, q in zip(_parameters(state), expected))
        assert state.removal.baseline.value == live.removal.baseline.value
        assert state.shrinkage.baseline.value == live.shrinkage.baseline.value
        assert (state.removal.updates, state.shrinkage.updates) == (2, 2)
    # the learners moved, and a changed history is replayed afresh (not from the cache)
    initial = _parameters(N2N(context).policy_state(SearchHistory(), 1))
    assert not all(torch.equal(p, q) for p, q in zip(expected, initial))
    short = SearchHistory()
    for record, student in zip(history.records[:2], history.students[:2]):
        short.add(record, student)
    again = policy.policy_state(short, 2)
    assert again.removal.updates == 1 and again.shrinkage.updates == 0


def test_n2n_step_schedule(teacher_graph, small_config):
    config = small_config(method="n2n", steps=3)  # 6 evaluations
    config.methods.n2n_rollouts = 4
    policy = N2N(_context(teacher_graph, config))
    assert (policy.num_steps(), policy.step_size(1), policy.step_size(2)) == (2, 4, 2)  # ESNAC's 6 evaluations
    for share, stage1 in ((0.0, 1), (0.25, 1), (0.75, 2), (1.0, 2)):  # half up, at least 1
        config.methods.n2n_removal_share = share
        assert policy.removal_steps == stage1
    config.methods.n2n_rollouts = 1
    config.methods.n2n_removal_share = 0.5
    assert (policy.num_steps(), policy.removal_steps, policy.stage(3), policy.stage(4)) == (6, 3, 1, 2)


def test_n2n_without_removable_layers_shrinks_only_and_refuses_an_empty_space(teacher_graph, small_config, caplog):
    config = small_config(method="n2n")
    with caplog.at_level(logging.INFO, logger="botorch_archsearch"):
        policy = N2N(_context(teacher_graph, config, removal=False))
    assert "stage 1 (layer removal) is skipped" in caplog.text
    assert policy.removal_steps == 0 and policy.stage(1) == 2
    proposals = policy.propose(SearchHistory(), 1, torch.Generator().manual_seed(0))
    assert all(p.student.edit.num_removed == 0 for p in proposals)
    only_removal = N2N(_context(teacher_graph, config, shrinkage=False))
    assert only_removal.removal_steps == only_removal.num_steps()
    with pytest.raises(ArchSearchError, match=r"n2n: .*no removable layer and no channel group"):
        N2N(_context(teacher_graph, config, removal=False, shrinkage=False))


def test_n2n_end_to_end_through_compress_and_resume(tmp_path, small_config, search_data, search_teacher):
    config = small_config(method="n2n", steps=2)  # 4 evaluations: a removal step and a shrinkage step of 2
    config.methods.n2n_rollouts = 2
    result = compress(search_teacher, search_data, config, run_dir=tmp_path)
    records = result.records
    assert [(r.method, r.step) for r in records] == [("n2n", 1), ("n2n", 1), ("n2n", 2), ("n2n", 2)]
    assert len({r.key for r in records}) == 4
    stage1, stage2 = records[:2], records[2:]
    for r in stage1:  # removals only
        assert r.edit["remove"] and set(r.edit["shrink_ratios"]) == {0.0} and r.edit["skips"] == []
    ranked = [r for r in stage1 if r.ok and r.reward > 0]
    mask = max(ranked, key=lambda r: r.reward).edit["remove"] if ranked else []
    for r in stage2:  # the best stage-1 child's removals, shrunk
        assert r.edit["remove"] == mask and r.edit["skips"] == []
        assert all(min(abs(1 - x - s) for s in SHRINK_SCALES) < 1e-9 for x in r.edit["shrink_ratios"])
        assert any(x > 0 for x in r.edit["shrink_ratios"])
    # resumed from its first record, it proposes the same students again
    journal = tmp_path / "journal.jsonl"
    journal.write_text(journal.read_text().splitlines(keepends=True)[0])
    (tmp_path / "final.jsonl").unlink()
    resumed = compress(search_teacher, search_data, config, run_dir=tmp_path, resume=True)
    assert [r.key for r in resumed.records] == [r.key for r in records]
    assert [r.edit for r in resumed.records] == [r.edit for r in records]


@pytest.mark.parametrize("over_budget", ["zero", "shaped"])
def test_children_over_the_budget_move_the_policy_only_when_shaped(teacher_graph, small_config, over_budget):
    """Every child above ``reward.budget`` scores 0: with ``n2n_over_budget="zero"`` (N2N's own reward)
    every advantage is 0 and the policy stays at its start, and stage 2 keeps no removal; ``"shaped"``
    learns from ``-(size / budget - 1)`` and starts stage 2 from the child least over the budget."""
    config = small_config(method="n2n", steps=4)  # 2 removal steps of 2 children, then 2 shrinkage steps
    config.methods.n2n_rollouts = 2
    config.methods.n2n_over_budget = over_budget
    context = _context(teacher_graph, config)
    budget = context.teacher["params"] / 100  # no child of this teacher is within it
    config.reward.budget, config.reward.measure = budget, "params"
    policy = N2N(context)
    history = SearchHistory()
    for step in (1, 2):
        for p in policy.propose(history, step, torch.Generator().manual_seed(step)):
            history.add(_record(history, "n2n", step, p.student, 0.0), p.student)  # the reward above a budget
    records = history.of("n2n")
    assert all(r.params > budget for r in records)
    state = policy.policy_state(history, 3)
    moved = not all(torch.equal(p, q) for p, q in zip(_parameters(state),
                                                      _parameters(N2N(context).policy_state(SearchHistory(), 1))))
    least_over = min(records, key=lambda r: r.params)
    if over_budget == "zero":
        assert [policy.policy_reward(r) for r in records] == [0.0] * 4
        assert not moved and not any(policy.base_mask(history, 3))
    else:
        assert [policy.policy_reward(r) for r in records] == [-(r.params / budget - 1) for r in records]
        assert moved
        removed = [j for j, flag in enumerate(policy.base_mask(history, 3)) if flag]
        assert removed == least_over.edit["remove"]
    failed = _record(history, "n2n", 2, history.students[0], 0.0, status="failed")
    assert policy.policy_reward(failed) == 0.0  # a failed child gives its reward, 0, either way


def test_n2n_over_budget_is_checked(small_config):
    from botorch_archsearch.search import check_config

    config = small_config(method="n2n")
    config.methods.n2n_over_budget = "penalty"
    with pytest.raises(ArchSearchError, match=r"methods.n2n_over_budget.*'zero'.*'shaped'"):
        check_config(config)
    config.methods.n2n_over_budget = "shaped"  # with no budget to shape towards
    with pytest.raises(ArchSearchError, match=r"n2n_over_budget=shaped .* reward.budget, and none is set"):
        check_config(config)
    config.reward.budget = 1e5
    check_config(config)
