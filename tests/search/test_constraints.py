r"""Tests of botorch_archsearch/search/constraints.py and ``search.constraints`` in the search:
parsing, the feasibility test against brute-force counts, and every method meeting them."""

from __future__ import annotations

import pytest
import torch

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph import ArchGraph, count_flops, count_params, trace
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
    teacher["latency"] = 2.0
    c = parse_constraint("latency<=0.5")
    assert c.relative and c.measured and c.bound(teacher) == 1.0 and str(c) == "latency<=0.5"
    c = parse_constraint("latency<=0.4ms")
    assert c == Constraint("latency", 0.4, absolute=True) and not c.relative and c.bound(teacher) == 0.4
    assert str(c) == "latency<=0.4ms" and parse_constraint(str(c)) == c
    assert parse_constraint("latency<=3").bound(teacher) == 3.0 and not parse_constraint("flops<=0.3").measured


@pytest.mark.parametrize("text", ["flops<=3ms", "latency<=0.5s", "latency<=ms", "flops>=0.3",
                                  "flops<0.3", "flops<=0", "flops<=-1", "flops<=abc",
                                  "flops<=inf", 0.3, "params<=nan"])
def test_a_bad_constraint_is_one_error_naming_it_and_what_is_accepted(text):
    with pytest.raises(ArchSearchError, match=r"is not a constraint; write '<measure><=<limit>' with measure one of "
                                              r"\['params', 'flops', 'latency'\]"):
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


def _fake_ms(graph):
    """A stand-in for a measured latency, deterministic so that tests can check every decision: it
    grows with parameters and layers (not FLOPs, so that it is not another FLOPs constraint)."""
    return count_params(graph) / 1e4 + graph.num_layers / 20


def test_a_latency_constraint_is_measured_once_per_architecture_and_after_the_counts():
    space = SearchSpace(trace(get_teacher("resnet18", width=0.125).eval(), torch.randn(1, 3, 32, 32)))
    teacher = {"params": count_params(space.graph), "flops": count_flops(space.graph),
               "latency": _fake_ms(space.graph)}
    graphs = [space.apply(e) for e in space.sample(40, generator=torch.Generator().manual_seed(0))]
    measured = []

    def ms(graph):
        measured.append(graph.key())
        return _fake_ms(graph)

    test = feasibility(parse_constraints(["latency<=0.5", "flops<=0.6"]), teacher, latency=ms)
    expected = [count_flops(g) <= 0.6 * teacher["flops"] and _fake_ms(g) <= 0.5 * teacher["latency"] for g in graphs]
    assert [test(g) for g in graphs] == expected and 0 < sum(expected) < len(graphs)
    assert [test(g) for g in graphs] == expected  # again: from the cache
    over_flops = [g for g in graphs if count_flops(g) > 0.6 * teacher["flops"]]
    assert len(measured) == test.num_measured == len(graphs) - len(over_flops)  # never measured: over the counts
    assert all(test.known(g) for g in graphs if count_flops(g) <= 0.6 * teacher["flops"])
    with pytest.raises(ArchSearchError, match="a latency constraint needs latency="):
        feasibility(parse_constraints(["latency<=2ms"]), teacher)
    with pytest.raises(ArchSearchError, match=r"the relative constraint latency<=0.5 needs the teacher's latency"):
        feasibility(parse_constraints(["latency<=0.5"]), {"params": 1, "flops": 1}, latency=ms)


def test_graph_latency_times_the_untrained_network_of_a_graph():
    from botorch_archsearch.evaluation.latency import graph_latency

    space = SearchSpace(trace(get_teacher("resnet18", width=0.125).eval(), torch.randn(1, 3, 32, 32)))
    small = space.apply(space.uniform_edit(0.2))
    assert 0 < graph_latency(small, min_run_time=0.01) < 10_000
    assert 0 < graph_latency(space.graph, min_run_time=0.01) < 10_000


@pytest.mark.parametrize("method", ["esnac", "random", "magnitude"])
def test_every_student_meets_a_latency_constraint(method, monkeypatch, small_config, search_data, search_teacher):
    """With the timing replaced by a deterministic stand-in, every student of every method meets a
    relative latency constraint; ESNAC measures far fewer candidates than it scores."""
    import botorch_archsearch.evaluation.latency as latency
    import botorch_archsearch.search.loop as loop
    import botorch_archsearch.search.policies as policies

    calls = []

    def fake(graph, device="cpu", min_run_time=0.05):
        calls.append(graph.key())
        return _fake_ms(graph)

    for module in (latency, loop, policies):
        monkeypatch.setattr(module, "graph_latency", fake)
    config = small_config(method=method, steps=3, num_kernels=3, init="oneshot", targets=[0.5])
    config.search.constraints = ["latency<=0.6"]
    result = compress(search_teacher, search_data, config)
    space = SearchSpace(trace(search_teacher.model, torch.zeros(1, 3, 16, 16)))
    limit = 0.6 * _fake_ms(space.graph)
    records = [r for r in result.records if r.method == method]
    assert records
    sizes = [_fake_ms(ArchGraph.from_dict(r.architecture)) for r in records]
    assert all(ms <= limit for ms in sizes), (sizes, limit)
    if method == "esnac":
        scored = config.acquisition.num_candidates * config.search.num_kernels * (config.search.steps - 1)
        assert 0 < len(set(calls)) < scored / 4


def test_an_unmeetable_latency_constraint_is_refused_before_training(small_config, search_data, search_teacher):
    config = small_config(method="random")
    config.search.constraints = ["latency<=0.0001ms"]  # no network runs in a tenth of a microsecond
    with pytest.raises(ArchSearchError, match=r"search.constraints 'latency<=0.0001ms' latency cannot be met: the "
                                              r"smallest student of this teacher has [\d.e+-]+ ms of latency"):
        compress(search_teacher, search_data, config)


def test_a_constraint_the_one_shots_cannot_meet_is_refused_before_training(
        monkeypatch, small_config, search_data, search_teacher):
    """Only layer removal reaches the limit: the one-shot baselines (which shrink channels only)
    cannot meet it; one error naming them and the way out, before any student is trained."""
    import botorch_archsearch.search.loop as loop

    monkeypatch.setattr(loop, "graph_latency", lambda graph, device="cpu", min_run_time=0.05: _fake_ms(graph))
    space = SearchSpace(trace(search_teacher.model, torch.zeros(1, 3, 16, 16)))
    thinnest = _fake_ms(space.apply(space.uniform_edit(1 - 1e-9)))
    config = small_config(method="random", baselines=["uniform", "magnitude"])
    config.search.constraints = [f"latency<={0.9 * thinnest / _fake_ms(space.graph):.4f}"]
    with pytest.raises(ArchSearchError, match=r"latency cannot be met by uniform, magnitude \(they shrink channels "
                                              r"and remove no layer\).*search.baselines=\[\]"):
        compress(search_teacher, search_data, config)


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
