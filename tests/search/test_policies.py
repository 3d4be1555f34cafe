r"""Tests of the proposal policies (botorch_archsearch/search/policies.py): a new search method is
one registered class, driven by ``compress`` like the built-in ones."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph import count_params
from botorch_archsearch.search import (
    POLICIES,
    KernelTransfer,
    MultiKernelSearch,
    Proposal,
    ProposalPolicy,
    SearchContext,
    SearchHistory,
    check_config,
    compress,
    make_policy,
    random_students,
    read_journal,
    register_policy,
)


@pytest.fixture
def smallest_policy():
    """The README's toy search method, registered for one test."""

    @register_policy
    class Smallest(ProposalPolicy):
        """Each step, the smallest of 20 random students not evaluated yet."""

        name = "smallest"
        per_step = 1

        def propose(self, history, step, generator):
            students = random_students(self.context, history, self.name, step, 20, generator)
            return [Proposal(min(students, key=lambda s: count_params(s.graph)))]

    yield Smallest
    POLICIES.pop("smallest")


def test_a_search_method_is_one_registered_class(tmp_path, smallest_policy, small_config, search_data,
                                                 search_teacher):
    config = small_config(method="smallest", steps=3)
    check_config(config)
    result = compress(search_teacher, search_data, config, run_dir=tmp_path)
    assert [(r.method, r.step, r.kernel) for r in result.records] == [("smallest", s, None) for s in (1, 2, 3)]
    assert len({r.key for r in result.records}) == 3
    assert [r["method"] for r in read_journal(tmp_path / "journal.jsonl").records] == ["smallest"] * 3
    assert result.final[0].method == "smallest" and "smallest" in (tmp_path / "report.md").read_text()
    # each student is the smallest of the step's draws: the same draws, brute force
    context = SearchContext(_space(result, search_teacher), config, result.teacher, None)
    history = SearchHistory()
    for record, step in zip(result.records, (1, 2, 3)):
        generator = torch.Generator().manual_seed(_derive(config.seed, "smallest", step))
        drawn = random_students(context, history, "smallest", step, 20, generator)
        assert record.params == min(count_params(s.graph) for s in drawn)
        history.add(record, next(s for s in drawn if s.key() == record.key))
    # the step's log line gives the best student's size in what the reward counts
    best = max(result.records, key=lambda r: r.reward)
    line = make_policy("smallest", context).describe_step(history, 3, 3, 1, 1.0)
    assert f"{result.teacher['params'] / best.params:.1f}x fewer parameters)" in line, line
    flops = replace(config, reward=replace(config.reward, measure="flops"))
    line = make_policy("smallest", SearchContext(context.space, flops, result.teacher, None)).describe_step(
        history, 3, 3, 1, 1.0)
    assert f"{result.teacher['flops'] / best.flops:.1f}x fewer FLOPs)" in line, line
    # resumed from its first record, it proposes the same students again
    journal = tmp_path / "journal.jsonl"
    journal.write_text(journal.read_text().splitlines(keepends=True)[0])
    (tmp_path / "final.jsonl").unlink()
    resumed = compress(search_teacher, search_data, config, run_dir=tmp_path, resume=True)
    assert [r.key for r in resumed.records] == [r.key for r in result.records]


def _space(result, teacher):
    from botorch_archsearch.graph import trace
    from botorch_archsearch.space import SearchSpace, channel_importance

    graph = trace(teacher.model, torch.zeros(1, 3, 16, 16))
    return SearchSpace(graph, channel_importance=channel_importance(graph, teacher.model))


def _derive(seed, *tags):
    from botorch_archsearch.search.loop import derive_seed

    return derive_seed(seed, *tags)


def test_policy_registry_refuses_unknown_and_taken_names(small_config):
    assert {"random", "esnac", "uniform", "magnitude"} <= set(POLICIES)
    with pytest.raises(ArchSearchError, match=r"unknown method 'nope'; registered: .*esnac"):
        make_policy("nope", None)
    with pytest.raises(ArchSearchError, match=r"search\.method.*'nope'"):
        check_config(small_config(method="nope"))

    class Clash(ProposalPolicy):
        name = "esnac"

        def propose(self, history, step, generator):
            return []

    with pytest.raises(ArchSearchError, match=r"the method name 'esnac' is taken"):
        register_policy(Clash)
    assert POLICIES["esnac"] is MultiKernelSearch


def test_esnac_with_kernel_transfer_is_the_multiple_kernel_policy_with_given_models(tmp_path, small_config):
    config = small_config()
    config.kernel.transfer_from = str(tmp_path)
    with pytest.raises(ArchSearchError, match=r"no saved kernels under"):
        MultiKernelSearch.from_context(SearchContext(None, config, {}, None))
    assert issubclass(KernelTransfer, MultiKernelSearch)
