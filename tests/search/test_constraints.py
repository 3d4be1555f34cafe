r"""Tests of botorch_archsearch/search/constraints.py and ``search.constraints`` in the search:
parsing, the feasibility test against brute-force counts, and every method meeting them."""

from __future__ import annotations

import pytest
import torch

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph import count_flops, count_params, trace
from botorch_archsearch.models import get_teacher
from botorch_archsearch.search import compress
from botorch_archsearch.search.config import check_config
from botorch_archsearch.search.constraints import Constraint, feasibility, parse_constraint, parse_constraints
from botorch_archsearch.space import SearchSpace


def test_parsing_relative_and_absolute_limits():
    assert parse_constraint("flops<=0.33") == Constraint("flops", 0.33)
    assert parse_constraint(" params <= 500_000 ") == Constraint("params", 500000.0)
    assert parse_constraint("params<=1e4").limit == 10000.0
    teacher = {"params": 200_000, "flops": 9_000_000}
    c = parse_constraint("flops<=0.5")
    assert c.relative and c.bound(teacher) == 4_500_000 and c.fraction(teacher) == 0.5 and str(c) == "flops<=0.5"
    c = parse_constraint("params<=50000")
    assert not c.relative and c.bound(teacher) == 50_000 and c.fraction(teacher) == 0.25
    assert parse_constraints([]) == []


@pytest.mark.parametrize("text", ["latency<=3", "flops>=0.3", "flops<0.3", "flops<=0", "flops<=-1", "flops<=abc",
                                  "flops<=inf", 0.3, "params<=nan"])
def test_a_bad_constraint_is_one_error_naming_it_and_what_is_accepted(text):
    with pytest.raises(ArchSearchError, match=r"is not a constraint; write '<measure><=<limit>' with measure one of "
                                              r"\['params', 'flops'\]"):
        parse_constraint(text)


def test_feasibility_against_brute_force_counts():
    space = SearchSpace(trace(get_teacher("resnet18", width=0.125).eval(), torch.randn(1, 3, 32, 32)))
    teacher = {"params": count_params(space.graph), "flops": count_flops(space.graph)}
    graphs = [space.apply(e) for e in space.sample(40, generator=torch.Generator().manual_seed(0))]
    assert feasibility([], teacher) is None
    test = feasibility(parse_constraints(["flops<=0.3", "params<=20000"]), teacher, budget=1_000_000,
                       budget_measure="flops")
    for g in graphs:
        expected = count_flops(g) <= 0.3 * teacher["flops"] and count_params(g) <= 20000 and count_flops(g) <= 1e6
        assert test(g) == expected
    assert 0 < sum(map(test, graphs)) < len(graphs)  # both cases occur
    budget_only = feasibility([], teacher, budget=30000, budget_measure="params")
    assert [budget_only(g) for g in graphs] == [count_params(g) <= 30000 for g in graphs]


def test_the_config_refuses_a_bad_constraint():
    from botorch_archsearch.search import CompressConfig

    config = CompressConfig()
    config.search.constraints = ["flops<=0.3", "size<=2"]
    with pytest.raises(ArchSearchError, match=r"search.constraints: 'size<=2' is not a constraint"):
        check_config(config)


@pytest.mark.parametrize("method", ["esnac", "random", "uniform", "magnitude"])
def test_every_student_meets_the_constraints(method, small_config, search_data, search_teacher):
    """Two constraints on two measures: the searches never propose a student that breaks one, and
    the one-shots build the largest student that meets both (their FLOPs target clipped by the FLOPs
    constraint, bisected down for the parameters')."""
    config = small_config(method=method, steps=3, num_kernels=3, init="oneshot", targets=[0.5, 0.2])
    space = SearchSpace(trace(search_teacher.model, torch.zeros(1, 3, 16, 16)))
    teacher = {"params": count_params(space.graph), "flops": count_flops(space.graph)}
    config.search.constraints = ["flops<=0.4", f"params<={int(0.15 * teacher['params'])}"]
    config.reward.measure = "flops"
    result = compress(search_teacher, search_data, config)
    records = [r for r in result.records if r.method == method]
    assert records
    for r in records:
        assert r.flops <= 0.4 * teacher["flops"] and r.params <= int(0.15 * teacher["params"]), (r.flops, r.params)
    if method in ("uniform", "magnitude"):
        assert [r.target for r in records] == [0.4, 0.2]  # 0.5 clipped by flops<=0.4
        from botorch_archsearch.space import oneshot_edit

        for r in records:  # the largest: a little larger breaks the parameters' constraint (uniform: the same sizes)
            bigger = space.apply(oneshot_edit(space, "uniform", min(r.target, 1.1 * r.flops / teacher["flops"]),
                                              measure="flops"))
            assert count_params(bigger) > 0.15 * teacher["params"] or count_flops(bigger) == r.flops


def test_an_unreachable_constraint_is_refused_before_training(small_config, search_data, search_teacher):
    config = small_config(method="random")
    config.search.constraints = ["params<=10"]
    with pytest.raises(ArchSearchError, match=r"search.constraints 'params<=10' params cannot be met: the smallest "
                                              r"student of this teacher has [\d,]+ params"):
        compress(search_teacher, search_data, config)


def test_a_method_that_does_not_filter_scores_0_for_a_student_that_breaks_one(
        small_config, search_data, search_teacher):
    """N2N proposes by its own policy: a child over the constraint is trained and scores 0."""
    config = small_config(method="n2n", steps=2, num_kernels=3)
    space = SearchSpace(trace(search_teacher.model, torch.zeros(1, 3, 16, 16)))
    limit = int(0.6 * count_params(space.graph))  # N2N's first children only remove layers: most are larger
    config.search.constraints = [f"params<={limit}"]
    result = compress(search_teacher, search_data, config)
    over = [r for r in result.records if r.params > limit]
    assert over and all(r.reward == 0.0 for r in over)
    assert all(r.reward > 0 for r in result.records if r.params <= limit and r.status == "ok")


def test_channel_multiple_rounds_every_method_s_kept_channels(small_config, search_data, search_teacher):
    """``search.channel_multiple=8``: every convolution of every student keeps a multiple of 8
    channels (the teacher's are 8-64); without it, some do not."""
    from botorch_archsearch.graph import ArchGraph

    def out_channels(result):
        return [n.out_channels for r in result.records for n in ArchGraph.from_dict(r.architecture).nodes
                if n.op == "conv"]

    space = SearchSpace(trace(search_teacher.model, torch.zeros(1, 3, 16, 16)))
    free = [n.out_channels for e in space.sample(8, generator=torch.Generator().manual_seed(0))
            for n in space.apply(e).nodes if n.op == "conv"]
    assert any(c % 8 for c in free)  # without the option, sampled students keep other counts
    config = small_config(method="both", steps=2, num_kernels=3, baselines=["magnitude"], targets=[0.3],
                          channel_multiple=8)
    result = compress(search_teacher, search_data, config)
    assert {r.method for r in result.records} == {"esnac", "random", "magnitude"}
    assert all(c % 8 == 0 for c in out_channels(result))
