r"""End-to-end tests of the search (botorch_archsearch/search/loop.py) on synthetic data."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
import torch

from botorch_archsearch.evaluation.distill import accuracy
from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph import count_params, load_student, trace
from botorch_archsearch.kernels import load_kernel
from botorch_archsearch.models import get_teacher
from botorch_archsearch.search import CompressConfig, EvaluationRecord, TeacherConfig, compress, read_journal
from botorch_archsearch.search.records import TIMING_KEYS
from botorch_archsearch.space import SearchSpace


def test_esnac_two_steps_writes_the_run_directory(tmp_path, small_config, search_data, search_teacher):
    config = small_config()
    config.kernel.init_scale = 4.0
    result = compress(search_teacher, search_data, config, run_dir=tmp_path)
    records = read_journal(tmp_path / "journal.jsonl").records
    assert records == [r.to_dict() for r in result.records]
    assert [r["index"] for r in records] == [0, 1, 2, 3]
    assert [r["step"] for r in records] == [1, 1, 2, 2] and {r["method"] for r in records} == {"esnac"}
    assert [r["kernel"] for r in records] == [None, None, 0, 1]  # step 1 is random, then one per kernel
    assert len({r["key"] for r in records}) == 4  # never the same architecture twice
    for r in records:
        assert set(r) >= {"architecture", "encoding", "params", "flops", "accuracy", "reward", "seconds", "status"}
        assert r["status"] == "ok" and 0 <= r["accuracy"] <= 1
        c = 1 - r["params"] / result.teacher["params"]
        assert r["reward"] == pytest.approx(c * (2 - c) * r["accuracy"] / search_teacher.val_accuracy)
    # kernels of step 2, the best student (loadable), the report, TensorBoard
    assert len(list((tmp_path / "kernels").glob("esnac-step002/kernel*.pt"))) == 2
    assert load_kernel(tmp_path / "kernels" / "esnac-step002" / "kernel0.pt").kernel.embedding.init_scale == 4.0
    (final,) = result.final
    student = load_student(tmp_path / final.path)
    best = max(records, key=lambda r: r["reward"])
    assert final.index == best["index"] and count_params(student.graph) == best["params"]
    assert accuracy(student, search_data, "test") == pytest.approx(final.test_accuracy)
    assert (tmp_path / "report.md").is_file() and list((tmp_path / "tensorboard").iterdir())
    assert json.loads((tmp_path / "config.json").read_text()) == json.loads(json.dumps(config.to_dict()))


def test_random_search_has_the_same_budget_and_both_share_a_run(
        tmp_path, small_config, search_data, search_teacher):
    result = compress(search_teacher, search_data, small_config(method="both"), run_dir=tmp_path)
    methods = [r.method for r in result.records]
    assert methods == ["random"] * 4 + ["esnac"] * 4
    assert all(r.kernel is None for r in result.records if r.method == "random")
    assert set(result.best) == {"random", "esnac"} and len(result.final) == 2
    assert "random" in (tmp_path / "report.md").read_text()


def test_same_seed_same_search_without_a_run_directory(small_config, search_data, search_teacher):
    a = compress(search_teacher, search_data, small_config())
    b = compress(search_teacher, search_data, small_config())
    assert _strip(a.records) == _strip(b.records)
    assert a.run_dir is None


def test_resume_after_a_cut_off_journal_matches_an_uninterrupted_run(
        tmp_path, small_config, search_data, search_teacher):
    """A journal cut in the middle of a record (a kill during a write) resumes to the same end."""
    full = compress(search_teacher, search_data, small_config(steps=3), run_dir=tmp_path / "full")
    run = tmp_path / "cut"
    compress(search_teacher, search_data, small_config(steps=3), run_dir=run)
    lines = (run / "journal.jsonl").read_bytes().splitlines(keepends=True)
    (run / "journal.jsonl").write_bytes(b"".join(lines[:3]) + lines[3][:40])  # 3 records + half of one
    for name in ("final.jsonl", "report.md"):
        (run / name).unlink()
    resumed = compress(search_teacher, search_data, small_config(steps=3), run_dir=run, resume=True)
    assert _strip(resumed.records) == _strip(full.records)
    assert [f.test_accuracy for f in resumed.final] == [f.test_accuracy for f in full.final]
    assert list(run.glob("journal.jsonl.corrupt-*"))  # the cut-off tail was kept aside


def test_run_directory_guards(tmp_path, small_config, search_data, search_teacher):
    compress(search_teacher, search_data, small_config(steps=1), run_dir=tmp_path)
    with pytest.raises(ArchSearchError, match="already holds a search journal"):
        compress(search_teacher, search_data, small_config(steps=1), run_dir=tmp_path)
    other = small_config(steps=1)
    other.evaluation.epochs = 3
    with pytest.raises(ArchSearchError, match=r"config differs .* in evaluation\.epochs: started with 2, given 3\. "
                                              r"Only search\.steps, evaluation\.backend, .* may change on resume"):
        compress(search_teacher, search_data, other, run_dir=tmp_path, resume=True)
    with pytest.raises(ArchSearchError, match="not a run directory"):
        compress(search_teacher, search_data, small_config(), run_dir=tmp_path / "nothing", resume=True)
    assert not (tmp_path / "nothing").exists()


def test_a_run_directory_is_locked_while_a_search_runs_in_it(
        tmp_path, monkeypatch, small_config, search_data, search_teacher):
    from botorch_archsearch.search import RunDirectoryLock, RunDirectoryLockedError, loop

    seen = []
    monkeypatch.setattr(loop, "write_report",
                        lambda run_dir, *args, **kwargs: seen.append(RunDirectoryLock(run_dir).acquire()))
    with pytest.raises(RunDirectoryLockedError, match=rf"in use by process {os.getpid()}"):
        compress(search_teacher, search_data, small_config(steps=1), run_dir=tmp_path)
    assert not seen
    with RunDirectoryLock(tmp_path):  # released when compress ends, also by an error
        with pytest.raises(RunDirectoryLockedError, match=rf"in use by process {os.getpid()}"):
            compress(search_teacher, search_data, small_config(steps=1), run_dir=tmp_path, resume=True)


def test_resume_with_more_steps_extends_the_run(tmp_path, small_config, search_data, search_teacher):
    """``search.steps`` may change on resume; the run then ends as one started with that many steps."""
    full = compress(search_teacher, search_data, small_config(steps=2), run_dir=tmp_path / "full")
    run = tmp_path / "extended"
    assert len(compress(search_teacher, search_data, small_config(steps=1), run_dir=run).records) == 2
    resumed = compress(search_teacher, search_data, small_config(steps=2), run_dir=run, resume=True)
    assert _strip(resumed.records) == _strip(full.records)
    assert json.loads((run / "config.json").read_text())["search"]["steps"] == 2  # the next resume continues so
    assert json.loads((run / "run.json").read_text())["identity"]["search"] == {
        k: v for k, v in json.loads((run / "config.json").read_text())["search"].items() if k != "steps"}


def test_resume_refuses_an_edited_config_or_another_teacher_naming_what_differs(
        tmp_path, small_config, search_data, search_teacher, wide_search_teacher):
    compress(search_teacher, search_data, small_config(steps=1), run_dir=tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    saved["teacher"]["name"], saved["evaluation"]["epochs"] = "resnet34", 7  # config.json edited by hand
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ArchSearchError) as info:
        compress(search_teacher, search_data, CompressConfig.from_dict(saved), run_dir=tmp_path, resume=True)
    assert "(run.json) in evaluation.epochs: started with 2, given 7; " in str(info.value)
    assert 'teacher.name: started with "resnet18", given "resnet34"' in str(info.value)
    # the run's config with another teacher network: teacher.json tells them apart
    before, after = _traced_params(search_teacher), _traced_params(wide_search_teacher)
    with pytest.raises(ArchSearchError, match=rf"teacher differs from the one .* \(teacher.json\): params: started "
                                              rf"with {before}, now {after}"):
        compress(wide_search_teacher, search_data, small_config(steps=1), run_dir=tmp_path, resume=True)
    assert len(read_journal(tmp_path / "journal.jsonl").records) == 2  # nothing evaluated


def _strip(records) -> list[dict]:
    """The records' values but their wall-clock times."""
    return [{k: v for k, v in r.to_dict().items() if k not in TIMING_KEYS} for r in records]


def _traced_params(teacher) -> int:
    from botorch_archsearch.graph import trace

    return count_params(trace(teacher.model, torch.zeros(1, 3, 16, 16)))


def test_a_repeated_journal_line_is_counted_once_and_a_line_that_is_not_a_record_is_an_error(
        tmp_path, small_config, search_data, search_teacher):
    from botorch_archsearch.search import JournalError, JournalWarning

    full = compress(search_teacher, search_data, small_config(steps=2), run_dir=tmp_path)
    journal = tmp_path / "journal.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join([lines[0], lines[1], lines[1], *lines[2:]]))
    with pytest.warns(JournalWarning, match=r"line\(s\) 3 repeat an earlier record"):
        resumed = compress(search_teacher, search_data, small_config(steps=2), run_dir=tmp_path, resume=True)
    assert _strip(resumed.records) == _strip(full.records)
    header, *_, last = [[cell.strip() for cell in line.split("|")] for line in resumed.summary.splitlines()[1:]]
    assert last[header.index("Evaluations")] == "4"
    journal.write_text("".join([lines[0], "{}\n", *lines[1:]]))
    with pytest.raises(JournalError, match=r"line 2 is not a journal record: it lacks 'index', 'method'"):
        compress(search_teacher, search_data, small_config(steps=2), run_dir=tmp_path, resume=True)


def test_kernel_transfer_scores_with_saved_kernels_and_trains_none(
        tmp_path, monkeypatch, small_config, search_data, search_teacher, wide_search_teacher):
    source = tmp_path / "source"
    compress(search_teacher, search_data, small_config(), run_dir=source)
    from botorch_archsearch.acquisition import multi_kernel
    from botorch_archsearch.gp import fit as gp_fit

    def no_fit(*args, **kwargs):
        raise AssertionError("a transferred kernel was trained")

    monkeypatch.setattr(multi_kernel, "fit_architecture_gp", no_fit)
    monkeypatch.setattr(gp_fit, "fit_architecture_gp", no_fit)
    config = small_config()
    config = dataclasses.replace(config, kernel=dataclasses.replace(config.kernel, transfer_from=str(source)))
    other = wide_search_teacher  # another teacher (wider), same number of layers
    result = compress(other, search_data, config, run_dir=tmp_path / "target")
    step2 = [r for r in result.records if r.step == 2]
    assert len(step2) == 2 and [r.kernel for r in step2] == [0, 1] and len({r.key for r in step2}) == 2
    assert not (tmp_path / "target" / "kernels").exists()


def test_kernels_learned_on_resnet18_transfer_to_a_deeper_resnet34(
        tmp_path, small_config, search_data, search_teacher):
    """Paper section 4.3's first scenario: the saved kernels read the deeper teacher's students."""
    from botorch_archsearch.evaluation.teachers import load_teacher

    source = tmp_path / "source"
    compress(search_teacher, search_data, small_config(), run_dir=source)
    torch.manual_seed(0)
    deeper = load_teacher(get_teacher("resnet34", num_classes=4, in_channels=3, width=0.125), search_data)
    config = small_config()
    config.teacher = TeacherConfig(name="resnet34", width=0.125)
    config.kernel.transfer_from = str(source)
    result = compress(deeper, search_data, config, run_dir=tmp_path / "target")
    saved_layers = load_kernel(next((source / "kernels").glob("*/kernel0.pt"))).kernel.embedding.max_layers
    deep_layers = trace(deeper.model, torch.zeros(1, 3, 16, 16)).num_layers
    assert deep_layers > saved_layers
    step2 = [r for r in result.records if r.step == 2]
    assert [r.kernel for r in step2] == [0, 1] and all(len(r.encoding) == deep_layers * 15 for r in step2)


def test_a_saved_kernel_this_version_cannot_read_is_refused_before_any_training(
        tmp_path, small_config, search_data, search_teacher):
    (tmp_path / "kernels" / "esnac-step002").mkdir(parents=True)
    (tmp_path / "kernels" / "esnac-step002" / "kernel0.pt").write_bytes(b"not a kernel")
    config = small_config()
    config.kernel.transfer_from = str(tmp_path)
    from botorch_archsearch.search.config import check_config

    with pytest.raises(ArchSearchError, match="cannot read .*kernel0.pt as a saved kernel"):
        check_config(config)


def test_transfer_from_a_directory_without_kernels_is_a_clear_error(
        tmp_path, small_config, search_data, search_teacher):
    config = small_config()
    config = dataclasses.replace(config, kernel=dataclasses.replace(config.kernel, transfer_from=str(tmp_path)))
    with pytest.raises(ArchSearchError, match="kernel.transfer_from must be the run directory of an ESNAC search"):
        compress(search_teacher, search_data, config)


def test_a_teacher_that_cannot_take_the_images_fails_before_any_work(small_config, search_data):
    config = dataclasses.replace(small_config(), teacher=TeacherConfig(name="vgg19", width=0.125, epochs=1))
    with pytest.raises(ArchSearchError, match=r"teacher 'vgg19' cannot take dataset 'synthetic' images of shape"):
        compress(None, search_data, config)


@pytest.mark.parametrize("bf16", [None, True, False])
def test_evaluation_bf16_reaches_the_distillation(
        tmp_path, monkeypatch, bf16, small_config, search_data, search_teacher):
    from botorch_archsearch.search import backends

    seen = []
    real = backends.evaluate_students

    def spy(*args, **kwargs):
        seen.append(kwargs["bf16"])
        return real(*args, **kwargs)

    monkeypatch.setattr(backends, "evaluate_students", spy)
    config = small_config(method="random", steps=1)
    config = dataclasses.replace(config, evaluation=dataclasses.replace(config.evaluation, bf16=bf16),
                                 final=dataclasses.replace(config.final, top_k=0))
    result = compress(search_teacher, search_data, config, run_dir=tmp_path)
    assert seen and set(seen) == {bf16}
    assert all(r.status == "ok" for r in result.records)
    assert json.loads((tmp_path / "config.json").read_text())["evaluation"]["bf16"] == bf16


def test_a_run_directory_written_before_newer_keys_resumes_as_it_ran(
        tmp_path, small_config, search_data, search_teacher):
    """config.json files from before ``dataset.split_seed``, ``teacher.seed`` and
    ``evaluation.bf16`` existed resume with the values their search used (the search seed, and
    float32 on a CPU), not with today's defaults."""
    from botorch_archsearch.search import upgrade_saved_config

    config = small_config(steps=2)
    config = dataclasses.replace(
        config, seed=3, dataset=dataclasses.replace(config.dataset, split_seed=3),
        teacher=dataclasses.replace(config.teacher, seed=3),
        evaluation=dataclasses.replace(config.evaluation, bf16=False),
    )
    run = tmp_path / "old"
    full = compress(search_teacher, search_data, config, run_dir=run)
    saved = json.loads((run / "config.json").read_text())
    del saved["dataset"]["split_seed"], saved["teacher"]["seed"], saved["evaluation"]["bf16"]  # an older writer
    (run / "config.json").write_text(json.dumps(saved))
    lines = (run / "journal.jsonl").read_text().splitlines(keepends=True)
    (run / "journal.jsonl").write_text("".join(lines[:2]))  # killed after the first step
    for name in ("final.jsonl", "report.md", "run.json"):  # an older writer wrote no run.json either
        (run / name).unlink()
    upgraded = upgrade_saved_config(saved)
    assert "bf16" not in saved["evaluation"]  # not modified
    resumed = compress(search_teacher, search_data, CompressConfig.from_dict(upgraded), run_dir=run,
                       resume=True)
    assert _strip(resumed.records) == _strip(full.records)
    assert json.loads((run / "run.json").read_text())["identity"]["dataset"]["split_seed"] == 3  # stored now
    # today's defaults for the missing keys are a different config, and refused
    with pytest.raises(ArchSearchError, match="upgrade_saved_config"):
        compress(search_teacher, search_data, CompressConfig.from_dict(saved), run_dir=run, resume=True)


@pytest.mark.parametrize("order", ["even", "magnitude"])
def test_a_student_rebuilt_from_its_journal_record_inherits_the_weights_it_was_evaluated_with(
        tmp_path, monkeypatch, order, small_config, search_data, search_teacher):
    from botorch_archsearch.graph import ArchGraph, build_student
    from botorch_archsearch.search import backends, record_student
    from botorch_archsearch.space import channel_importance

    inherited, real = {}, backends.build_student

    def build(student, teacher):
        net = real(student, teacher)
        inherited[student.key()] = {k: v.clone() for k, v in net.state_dict().items()}
        return net

    monkeypatch.setattr(backends, "build_student", build)
    compress(search_teacher, search_data,
             small_config(method="random", steps=2, num_kernels=3, channel_order=order), run_dir=tmp_path)
    teacher = search_teacher.model
    graph = trace(teacher, torch.zeros(1, 3, 16, 16))
    space = SearchSpace(graph, channel_importance=channel_importance(graph, teacher))
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    refused = 0
    for record in read_journal(tmp_path / "journal.jsonl").records:
        evaluated = build_student(ArchGraph.from_dict(record["architecture"]))
        evaluated.load_state_dict(inherited[record["key"]])
        rebuilt = build_student(record_student(space, EvaluationRecord.from_dict(record)), teacher)
        with torch.no_grad():
            torch.testing.assert_close(rebuilt.eval()(x), evaluated.eval()(x), rtol=0, atol=0)
        # the architecture alone (no channel plan) does not say which channels were kept: refused
        try:
            build_student(ArchGraph.from_dict(record["architecture"]), teacher)
        except ArchSearchError as error:
            refused += "does not say which of them it keeps" in str(error)
    assert refused > 0  # shrunk students among them


def test_a_journal_of_another_teacher_is_refused(tmp_path, small_config, search_data, search_teacher):
    from botorch_archsearch.search import record_student

    compress(search_teacher, search_data, small_config(method="random", steps=1), run_dir=tmp_path)
    record = EvaluationRecord.from_dict(read_journal(tmp_path / "journal.jsonl").records[0])
    other = get_teacher("vgg19", num_classes=4, in_channels=3, width=0.125)
    space = SearchSpace(trace(other, torch.zeros(1, 3, 32, 32)))
    with pytest.raises(ArchSearchError, match="journal record 0: SearchSpace.student_from_dict: the edit does not "
                                              "apply to this teacher"):
        record_student(space, record)


@pytest.mark.slow  # three searches, one of them with the worker process (isolation="process")
def test_students_trained_side_by_side_in_threads_give_the_same_search(
        tmp_path, small_config, search_data, search_teacher):
    """``evaluation.workers=2``: the step's students train in two threads (the path a multi-core
    CPU takes by default), with the records of one at a time."""
    def run(workers, isolation):
        config = small_config(isolation=isolation, method="random", steps=1, num_kernels=3)
        config = dataclasses.replace(config, evaluation=dataclasses.replace(config.evaluation, workers=workers))
        return compress(search_teacher, search_data, config).records

    one = run(1, "none")
    for records in (run(2, "none"), run(2, "process")):
        assert _strip(records) == _strip(one)


# ---------------------------------------------------------------------------- one-shot baselines, ESNAC's levers
def _plain(record):
    edit = record["edit"]
    return not edit["remove"] and not edit["skips"] and len(set(edit["shrink_ratios"])) == 1


def test_one_shot_baselines_run_after_the_search_at_the_size_of_its_best_student(
        tmp_path, small_config, search_data, search_teacher):
    config = small_config(baselines=["uniform", "magnitude"])
    result = compress(search_teacher, search_data, config, run_dir=tmp_path)
    records = read_journal(tmp_path / "journal.jsonl").records
    assert [r["method"] for r in records] == ["esnac"] * 4 + ["uniform", "magnitude"]
    teacher_params = result.teacher["params"]
    best = max(records[:4], key=lambda r: r["reward"])
    for record in records[4:]:
        assert record["step"] == 1 and record["kernel"] is None and _plain(record)
        assert record["target"] == pytest.approx(best["params"] / teacher_params)
        assert record["params"] <= best["params"]  # equal or higher compression than the search's best
        assert record["params"] >= 0.8 * best["params"]  # and the largest student within it
        c = 1 - record["params"] / teacher_params
        assert record["reward"] == pytest.approx(
            c * (2 - c) * record["accuracy"] / search_teacher.val_accuracy)
    assert records[4]["edit"].get("channel_order", "even") == "even"
    assert records[5]["edit"]["channel_order"] == "magnitude"
    assert records[4]["key"] == records[5]["key"]  # one ratio for every group: the same architecture
    assert set(result.best) == {"esnac", "uniform", "magnitude"}
    assert {f.method for f in result.final} == {"esnac", "uniform", "magnitude"}
    rows = [line.split("|")[1].strip() for line in result.summary.splitlines()[1:]]
    assert "uniform" in rows and "magnitude" in rows
    # resumed after the search, the baselines come back with the same targets and results
    journal = tmp_path / "journal.jsonl"
    journal.write_text("".join(journal.read_text().splitlines(keepends=True)[:5]))
    for name in ("final.jsonl", "report.md"):
        (tmp_path / name).unlink()
    resumed = compress(search_teacher, search_data, config, run_dir=tmp_path, resume=True)
    assert _strip(resumed.records) == _strip(map(EvaluationRecord.from_dict, records))


@pytest.mark.parametrize("scope", ["group", "global"])
def test_a_one_shot_method_alone_meets_each_target(scope, small_config, search_data, search_teacher):
    config = small_config(method="magnitude", targets=[0.5, 0.2], magnitude_scope=scope)
    result = compress(search_teacher, search_data, config)
    assert [(r.method, r.step, r.target) for r in result.records] == [("magnitude", 1, 0.5), ("magnitude", 2, 0.2)]
    for record in result.records:
        assert record.params <= record.target * result.teacher["params"]
        assert record.edit["channel_order"] == "magnitude" and not record.edit["remove"]
    assert result.records[0].params > result.records[1].params
    # without targets: the reward's budget, then the default sweep
    config = small_config(method="uniform")
    config.reward.budget = 0.3 * result.teacher["params"]
    (record,) = compress(search_teacher, search_data, config).records
    assert record.target == pytest.approx(0.3) and record.params <= config.reward.budget
    from botorch_archsearch.search.policies import DEFAULT_TARGETS

    swept = compress(search_teacher, search_data, small_config(method="uniform")).records
    assert [r.target for r in swept] == list(DEFAULT_TARGETS)


def test_a_target_the_teacher_cannot_reach_is_one_clear_error(small_config, search_data, search_teacher):
    with pytest.raises(ArchSearchError, match="cannot reach a target of 1e-06"):
        compress(search_teacher, search_data, small_config(method="uniform", targets=[1e-6]))


def test_esnac_starts_from_one_shot_students(tmp_path, small_config, search_data, search_teacher):
    from botorch_archsearch.search.policies import INIT_TARGETS

    result = compress(search_teacher, search_data, small_config(init="oneshot", num_kernels=3),
                      run_dir=tmp_path)
    first = [r.to_dict() for r in result.records if r.step == 1]
    assert [r["target"] for r in first] == [INIT_TARGETS[0], INIT_TARGETS[0], INIT_TARGETS[1]]
    assert [r["edit"].get("channel_order", "even") for r in first] == ["magnitude", "even", "magnitude"]
    assert all(_plain(r) and r["params"] <= r["target"] * result.teacher["params"] for r in first)
    assert all(r.target is None for r in result.records if r.step > 1)
    # with magnitude-ordered search students, uniform and magnitude at one target are one student
    result = compress(search_teacher, search_data, small_config(init="oneshot", channel_order="magnitude"))
    first = [r for r in result.records if r.step == 1]
    assert [r.target for r in first] == [INIT_TARGETS[0], INIT_TARGETS[1]]
    assert all(r.edit["channel_order"] == "magnitude" for r in result.records)


def test_no_search_proposes_a_student_over_the_budget_and_esnac_starts_at_it(
        monkeypatch, small_config, search_data, search_teacher):
    """``reward.budget`` is exact for ESNAC and random search: every student proposed is within
    it (the candidates over it are never scored), and the one-shot start is at the budget, half of
    it and 3/10 of it (the fractions of ``INIT_TARGETS``)."""
    from botorch_archsearch.graph import count_flops
    from botorch_archsearch.search import policies

    scored = []
    original = policies.propose_architectures

    def spy(*args, **kwargs):
        feasible = kwargs["feasible"]
        kwargs["feasible"] = lambda graph: scored.append(feasible(graph)) or feasible(graph)
        return original(*args, **kwargs)

    monkeypatch.setattr(policies, "propose_architectures", spy)
    flops = count_flops(SearchSpace(trace(search_teacher.model, torch.zeros(1, 3, 16, 16))).graph)
    config = small_config(method="both", init="oneshot", steps=3, num_kernels=3)
    config.reward.budget, config.reward.budget_measure = 0.2 * flops, "flops"
    result = compress(search_teacher, search_data, config)
    assert all(r.flops <= config.reward.budget for r in result.records), [r.flops for r in result.records]
    assert scored and not all(scored)  # candidates over the budget were drawn, and left out
    first = [r.target for r in result.records if r.step == 1 and r.method == "esnac"]
    assert first == pytest.approx([0.2, 0.2, 0.1])  # magnitude and uniform at the budget, magnitude at half
    start = [r.flops for r in result.records if r.method == "esnac" and r.step == 1]
    assert start[0] > config.reward.budget / 2 >= start[2]  # the largest one-shot within the budget, then half


@pytest.mark.parametrize("local_edits", ["perturb", "mutate"])
def test_local_edits_of_the_best_students_join_the_candidates(
        monkeypatch, local_edits, small_config, search_data, search_teacher):
    from botorch_archsearch.search import policies
    from botorch_archsearch.space import Edit

    seen, real = [], policies.propose_architectures

    def propose(space, X, Y, **kwargs):
        seen.append(list(kwargs["extra_candidates"]))
        return real(space, X, Y, **kwargs)

    monkeypatch.setattr(policies, "propose_architectures", propose)
    config = small_config(steps=3, local_fraction=0.5, channel_order="magnitude", local_edits=local_edits)
    result = compress(search_teacher, search_data, config)
    assert [len(extra) for extra in seen] == [15, 15]  # half of acquisition.num_candidates=30, steps 2 and 3
    space = SearchSpace(trace(search_teacher.model, torch.zeros(1, 3, 16, 16)))
    for extra in seen:
        for edit in extra:
            assert isinstance(edit, Edit) and edit.channel_order == "magnitude"
            space.check(Edit(edit.remove_mask, edit.shrink_ratios, edit.skips))  # a valid edit of the teacher
    # each is a mutation of one of the best students so far: it differs from it in few entries
    by_step = [[Edit.from_dict(r.edit) for r in result.records if r.step < step] for step in (2, 3)]
    for extra, before in zip(seen, by_step):
        for edit in extra:
            flips = min(sum(a != b for a, b in zip(edit.remove_mask, p.remove_mask)) for p in before)
            assert flips < len(space.removable) // 3
            if local_edits == "perturb":  # small steps of every ratio around one of the best
                assert min(max(abs(a - b) for a, b in zip(edit.shrink_ratios, p.shrink_ratios)) for p in before) < 0.8
    # the paper's default draws no local edits
    seen.clear()
    compress(search_teacher, search_data, small_config(steps=3))
    assert seen == [[], []]


@pytest.mark.parametrize("changes, message", [
    ({"reward": {"budget": 10.0, "budget_measure": "flops"}},
     r"reward.budget=10 flops cannot be met: the smallest student of this teacher has [\d,]+ flops"),
    ({"search": {"method": "magnitude", "targets": [1e-6]}},
     r"search.targets: magnitude cannot reach a target of 1e-06 of the teacher's params: the smallest student"),
])
def test_a_target_no_student_can_meet_is_refused_before_the_teacher_is_trained(tmp_path, monkeypatch, changes,
                                                                                 message):
    monkeypatch.setenv("BOTORCH_ARCHSEARCH_CACHE", str(tmp_path / "cache"))
    values = {"teacher": {"name": "resnet18", "width": 0.125, "epochs": 1, "max_batches": 2},
              "dataset": {"name": "synthetic"}, "progress": False}
    for section, entries in changes.items():
        values.setdefault(section, {}).update(entries)
    with pytest.raises(ArchSearchError, match=message):
        compress(config=CompressConfig.from_dict(values))
    assert not any((tmp_path / "cache").rglob("*.pt"))  # no teacher was trained


@pytest.mark.parametrize("kind", ["n2n", "accuracy"])
def test_accuracy_target_models_the_accuracy_ratio_and_scores_the_reward(
        kind, tmp_path, monkeypatch, small_config, search_data, search_teacher):
    """``kernel.target=accuracy``: the GPs are fitted on ``A / A_teacher``, the acquisition's
    ``best_f`` is the best reward, and no proposal is over the FLOPs budget; with
    ``reward.kind=accuracy`` every reward is the accuracy ratio within the budget (0 above) and
    the known factor is 1 within it."""
    from botorch_archsearch.acquisition import CompressionFactor
    from botorch_archsearch.search import policies

    calls = []
    original = policies.propose_architectures

    def spy(space, X, Y, **kwargs):
        calls.append((X, Y, kwargs))
        return original(space, X, Y, **kwargs)

    monkeypatch.setattr(policies, "propose_architectures", spy)
    config = small_config(steps=3)
    config.kernel.target = "accuracy"
    graph = SearchSpace(trace(search_teacher.model, torch.zeros(1, 3, 16, 16))).graph
    from botorch_archsearch.graph import count_flops

    config.reward.budget = 0.5 * count_flops(graph)
    config.reward.budget_measure = "flops"
    config.reward.kind = kind
    result = compress(search_teacher, search_data, config, run_dir=tmp_path)
    assert len(calls) == 2  # steps 2 and 3
    for step, (X, Y, kwargs) in zip((2, 3), calls):
        earlier = [r for r in result.records if r.step < step]
        expected = [[r.accuracy / search_teacher.val_accuracy] for r in earlier]
        torch.testing.assert_close(Y, torch.tensor(expected, dtype=torch.float64))
        assert kwargs["best_f"] == max(r.reward for r in earlier)
        factor = kwargs["known_factor"]
        assert isinstance(factor, CompressionFactor) and len(factor) > 0
        if kind == "accuracy":  # within the budget the factor is 1 whatever the size
            from botorch_archsearch.graph import ArchGraph

            for r in earlier:
                within = r.flops <= config.reward.budget
                assert factor.factor(ArchGraph.from_dict(r.architecture)) == (1.0 if within else 0.0)
    for r in result.records:
        if r.step > 1:
            assert r.flops <= config.reward.budget and r.reward > 0
        if kind == "accuracy":
            within = r.flops <= config.reward.budget
            expected = r.accuracy / search_teacher.val_accuracy if within and r.status == "ok" else 0.0
            assert r.reward == pytest.approx(expected, rel=1e-12, abs=0)


def test_warm_start_starts_each_step_from_the_previous_kernels_and_resumes_the_same(
        tmp_path, monkeypatch, small_config, search_data, search_teacher):
    from botorch_archsearch.search import policies

    def config(steps):
        c = small_config(steps=steps)
        c.kernel.warm_start = True
        c.kernel.width_init = "median"
        return c

    starts = []
    original = policies.propose_architectures

    def spy(space, X, Y, **kwargs):
        starts.append(kwargs["initial_kernels"])
        return original(space, X, Y, **kwargs)

    monkeypatch.setattr(policies, "propose_architectures", spy)
    full = compress(search_teacher, search_data, config(4), run_dir=tmp_path / "full")
    assert starts[0] is None  # step 2: the first kernels start from scratch
    for step, states in zip((3, 4), starts[1:]):
        assert len(states) == 2
        for k, state in enumerate(states):
            saved = load_kernel(tmp_path / "full" / "kernels" / f"esnac-step{step - 1:03d}" / f"kernel{k}.pt")
            for name, value in saved.kernel.state_dict().items():
                assert torch.equal(state[name], value), name
    # the kernel of step 3 really starts where step 2's ended: its fitted weights moved from those
    step2 = load_kernel(tmp_path / "full" / "kernels" / "esnac-step002" / "kernel0.pt").kernel.state_dict()
    step3 = load_kernel(tmp_path / "full" / "kernels" / "esnac-step003" / "kernel0.pt").kernel.state_dict()
    assert step3["embedding_scale"] == step2["embedding_scale"]
    # without a run directory the kernels are kept in memory: the same search
    in_memory = compress(search_teacher, search_data, config(4))
    assert _strip(in_memory.records) == _strip(full.records)
    # resumed after step 3, it ends as the uninterrupted run
    run = tmp_path / "resumed"
    compress(search_teacher, search_data, config(3), run_dir=run)
    resumed = compress(search_teacher, search_data, config(4), run_dir=run, resume=True)
    assert _strip(resumed.records) == _strip(full.records)


def test_warm_start_and_kernel_transfer_do_not_mix(small_config):
    from botorch_archsearch.search.config import check_config

    config = small_config()
    config.kernel.warm_start = True
    config.kernel.transfer_from = "somewhere"
    with pytest.raises(ArchSearchError, match="kernel.warm_start .* kernel.transfer_from .* Choose one"):
        check_config(config)


@pytest.mark.parametrize("name", ["edit", "wl"])
def test_the_edit_and_wl_surrogates_search_and_save_no_kernels(
        tmp_path, monkeypatch, small_config, search_data, search_teacher, name):
    from botorch_archsearch.gp import fit as gp_fit

    fits = []
    original = gp_fit.fit_architecture_gp

    def spy(model, **kwargs):
        fits.append(type(model.covar_module.embedding).__name__)
        return original(model, **kwargs)

    from botorch_archsearch.acquisition import multi_kernel

    monkeypatch.setattr(multi_kernel, "fit_architecture_gp", spy)
    config = small_config(steps=3)
    config.kernel.name = name
    config.kernel.target = "accuracy"
    result = compress(search_teacher, search_data, config, run_dir=tmp_path)
    assert fits == [{"edit": "EditFeatures", "wl": "WLFeatures"}[name]] * 4  # 2 kernels x steps 2 and 3
    assert [r.kernel for r in result.records if r.step > 1] == [0, 1, 0, 1]
    assert len({r.key for r in result.records}) == 6
    assert not (tmp_path / "kernels").exists()
    # the same search again: the same students (the feature maps are deterministic)
    again = compress(search_teacher, search_data, config)
    assert _strip(again.records) == _strip(result.records)


def test_the_random_acquisition_searches_without_fitting_or_saving_kernels(
        tmp_path, monkeypatch, small_config, search_data, search_teacher):
    from botorch_archsearch.acquisition import multi_kernel
    from botorch_archsearch.search.config import check_config

    def no_fit(model, **kwargs):
        raise AssertionError("acquisition.name=random fitted a kernel")

    monkeypatch.setattr(multi_kernel, "fit_architecture_gp", no_fit)
    config = small_config(steps=3)
    config.acquisition.name = "random"
    result = compress(search_teacher, search_data, config, run_dir=tmp_path)
    assert [r.kernel for r in result.records if r.step > 1] == [0, 1, 0, 1]
    assert len({r.key for r in result.records}) == 6
    assert not (tmp_path / "kernels").exists()
    again = compress(search_teacher, search_data, config)
    assert _strip(again.records) == _strip(result.records)
    config.kernel.warm_start = True
    with pytest.raises(ArchSearchError, match="acquisition.name=random uses no kernel"):
        check_config(config)
    config.kernel.warm_start = False
    config.search.objective = "pareto"
    with pytest.raises(ArchSearchError, match="search.objective=pareto .its own acquisition. do not apply"):
        check_config(config)


def test_warm_start_and_transfer_need_the_learned_kernel(small_config):
    from botorch_archsearch.search.config import check_config

    config = small_config()
    config.kernel.name = "wl"
    config.kernel.warm_start = True
    with pytest.raises(ArchSearchError, match="need the learned kernel .kernel.name=bilstm.; the 'wl' kernel"):
        check_config(config)
    config.kernel.name = "lstm"
    with pytest.raises(ArchSearchError, match="kernel.name must be one of"):
        check_config(config)


def test_measured_latency_is_recorded_in_the_journal(tmp_path, small_config, search_data, search_teacher):
    from botorch_archsearch.search import JOURNAL_FORMAT

    config = small_config(method="random")
    config.evaluation.latency_batch = 4
    result = compress(search_teacher, search_data, config, run_dir=tmp_path)
    lines = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines() if line.strip()]
    records = [line for line in lines if "index" in line]
    assert records and JOURNAL_FORMAT == 4
    for line, record in zip(records, result.records):
        assert line["format"] == 4 and set(line["latency"]["ms"]) == {"1", "4"}
        assert line["latency"]["device"].startswith("cpu: ") and line["latency"] == record.latency
        assert EvaluationRecord.from_dict(line).latency == line["latency"]  # read back as written
    plain = compress(search_teacher, search_data, small_config(method="random"), run_dir=tmp_path / "plain")
    assert all(r.latency is None for r in plain.records)
    assert "latency" not in (tmp_path / "plain" / "journal.jsonl").read_text()  # left out when not measured


def test_a_pareto_search_proposes_by_hypervolume_and_trains_its_front(
        tmp_path, monkeypatch, caplog, small_config, search_data, search_teacher):
    """``search.objective=pareto``: from the second step ESNAC's kernels model the accuracy ratio
    and score candidates by the expected hypervolume improvement with their exact sizes; the final
    training takes students of each method's front, which is non-dominated; the report shows it."""
    from botorch_archsearch.acquisition.pareto import LogExpectedHypervolumeImprovement, pareto_mask
    from botorch_archsearch.export import export_student
    from botorch_archsearch.search import policies

    calls = []
    original = policies.propose_architectures

    def spy(space, X, Y, **kwargs):
        calls.append((Y, kwargs))
        return original(space, X, Y, **kwargs)

    monkeypatch.setattr(policies, "propose_architectures", spy)
    caplog.set_level("INFO", logger="botorch_archsearch")
    config = small_config(method="both", steps=3, num_kernels=3, objective="pareto")
    config.final.top_k = 3
    result = compress(search_teacher, search_data, config, run_dir=tmp_path)
    assert len(calls) == 2  # ESNAC's steps 2 and 3
    for step, (Y, kwargs) in zip((2, 3), calls):
        earlier = [r for r in result.records if r.method == "esnac" and r.step < step]
        torch.testing.assert_close(Y, torch.tensor([[r.accuracy / search_teacher.val_accuracy] for r in earlier],
                                                   dtype=torch.float64))
        assert kwargs["known_factor"] is None and kwargs["make_acquisition"] is not None
    for method in ("esnac", "random"):
        records = [r for r in result.records if r.method == method and r.ok]
        front = [r for r, keep in zip(records, pareto_mask([r.params for r in records], [r.accuracy for r in records]))
                 if keep]
        trained = [f for f in result.final if f.method == method]
        assert 1 <= len(trained) <= 3 and [f.rank for f in trained] == list(range(1, len(trained) + 1))
        assert {f.index for f in trained} <= {r.index for r in front}  # only front students, smallest first
        assert [f.params for f in trained] == sorted(f.params for f in trained)
        if len(front) >= 3:  # its largest, and those dominating the most area with it (exact subset selection)
            from botorch_archsearch.acquisition.pareto import front_subset

            assert len(trained) == 3 and trained[-1].params == max(r.params for r in front)
            by_size = sorted(front, key=lambda r: (r.params, r.index))
            picks = front_subset([r.params for r in by_size], [r.accuracy for r in by_size], 3)
            assert [f.index for f in trained] == [by_size[i].index for i in picks]
    text = (tmp_path / "report.md").read_text()
    assert "## Pareto front" in text and "| esnac | 9 |" in text
    from botorch_archsearch.acquisition.pareto import hypervolume_2d

    esnac = [r for r in result.records if r.method == "esnac" and r.ok]
    front = [r for r, keep in zip(esnac, pareto_mask([r.params for r in esnac], [r.accuracy for r in esnac])) if keep]
    hv = hypervolume_2d([r.params / result.teacher["params"] for r in front],
                        [r.accuracy / search_teacher.val_accuracy for r in front], 1.0)
    last = [m for m in caplog.messages if m.startswith("esnac step 3/3")]
    assert last and f"; front: {len(front)} students, hypervolume {hv:.4f} (accuracy, params)" in last[0]
    exported = export_student(tmp_path / result.final[0].path, "torchscript")  # the front's students load and export
    assert exported.path.is_file()
    # the acquisition it made, on a fitted model: the analytic EHVI of the module
    assert isinstance(calls[0][1]["make_acquisition"](_fitted_gp(calls[0][0])), LogExpectedHypervolumeImprovement)


def _fitted_gp(Y):
    from botorch.models import SingleTaskGP

    X = torch.rand(len(Y), 2, dtype=torch.float64)
    return SingleTaskGP(X, Y)


def test_a_pareto_search_over_measured_latency(tmp_path, monkeypatch, small_config, search_data, search_teacher):
    """``search.pareto_cost=latency``: the candidates' latencies are predicted by a GP of the log
    latency of the evaluated students; the final training and the report use the front over the
    measured latency."""
    from botorch_archsearch.acquisition.pareto import PredictedSize
    from botorch_archsearch.search import policies

    made = []
    original = policies.LogExpectedHypervolumeImprovement

    def spy(model, size, *args, **kwargs):
        made.append(size)
        return original(model, size, *args, **kwargs)

    monkeypatch.setattr(policies, "LogExpectedHypervolumeImprovement", spy)
    config = small_config(method="esnac", steps=3, num_kernels=3, objective="pareto", pareto_cost="latency")
    config.evaluation.latency_batch = 2
    config.final.top_k = 2
    result = compress(search_teacher, search_data, config, run_dir=tmp_path)
    assert made and all(isinstance(size, PredictedSize) and len(size) > 0 for size in made)
    timed = [r for r in result.records if r.ok]
    ms = {r.index: r.latency["ms"]["1"] for r in timed}
    front = {r.index for r in timed if not any(ms[s.index] <= ms[r.index] and s.accuracy >= r.accuracy
                                                and (ms[s.index] < ms[r.index] or s.accuracy > r.accuracy)
                                                for s in timed)}
    assert {f.index for f in result.final} <= front and len(result.final) == min(2, len(front))
    text = (tmp_path / "report.md").read_text()
    assert "## Pareto front" in text and " ms " in text.split("## Pareto front")[1]


def test_a_pareto_search_over_latency_needs_it_measured():
    config = CompressConfig()
    config.search.objective, config.search.pareto_cost = "pareto", "latency"
    from botorch_archsearch.search.config import check_config

    with pytest.raises(ArchSearchError, match="search.pareto_cost=latency .* needs search.objective=pareto and "
                                              "evaluation.latency_batch"):
        check_config(config)
