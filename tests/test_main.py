r"""Tests of the Hydra application (``python -m botorch_archsearch``), in subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from botorch_archsearch.search.records import TIMING_KEYS

# Every test here starts the app in a subprocess (seconds to a minute each).
pytestmark = pytest.mark.slow


@pytest.fixture
def app(tmp_path, cli_env):
    """``app(args, timeout=300, **kwargs)``: ``python -m botorch_archsearch ARGS`` run to its end in
    ``tmp_path``, with ``cli_env(tmp_path)``; its ``CompletedProcess`` (text, output captured)."""
    def run(args, timeout=300, **kwargs):
        return subprocess.run([sys.executable, "-m", "botorch_archsearch", *args], capture_output=True,
                              text=True, timeout=timeout, env=cli_env(tmp_path), cwd=tmp_path, **kwargs)

    return run


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "journal.jsonl").read_text().splitlines()]


def _strip(records):
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


def test_the_default_job_puts_the_one_shot_baselines_next_to_esnac(tmp_path, app, tiny_default_cli_args):
    out = app([*tiny_default_cli_args, "search.steps=2", "search.num_kernels=2", "hydra.run.dir=run"])
    assert out.returncode == 0, out.stderr[-3000:]
    records = _records(tmp_path / "run")
    assert [r["method"] for r in records] == ["esnac"] * 4 + ["uniform", "magnitude"]
    best = max(records[:4], key=lambda r: r["reward"])
    assert all(r["params"] <= best["params"] for r in records[4:])
    summary = out.stdout[out.stdout.index("summary:"):]
    rows = {line.split("|")[1].split()[0].lower(): line for line in summary.splitlines()[3:7]}  # after the header
    assert set(rows) == {"teacher", "esnac", "uniform", "magnitude"}, summary
    for record in records[4:]:
        assert f"{record['reward']:.4f}" in rows[record["method"]]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "| uniform |" in report and "| magnitude |" in report


def test_bad_values_fail_before_any_work_naming_the_key(tmp_path, app, tiny_cli_args):
    out = app([*tiny_cli_args, "search.num_kernels=0", "hydra.run.dir=run"])
    assert out.returncode == 2
    assert "search.num_kernels must be an integer >= 1, got 0" in out.stderr
    assert not (tmp_path / "run" / "journal.jsonl").exists()
    out = app([*tiny_cli_args, "search.shrink_range=[0.5,2.0]", "hydra.run.dir=run"])
    assert out.returncode == 2 and "search.shrink_range must be a number in [0, 1], got 2.0" in out.stderr
    out = app([*tiny_cli_args, "teacher=alexnet", "hydra.run.dir=run"])
    assert out.returncode != 0 and "alexnet" in out.stderr and "tiny_resnet18" in out.stderr  # Hydra lists them
    out = app([*tiny_cli_args, "teacher=tiny_vgg19", "dataset=digits", "hydra.run.dir=run"])
    assert out.returncode == 2 and "teacher 'vgg19' cannot take dataset 'digits'" in out.stderr
    out = app([*tiny_cli_args, 'search.constraints=["flops<=0.5","size<=2"]', "hydra.run.dir=run"])
    assert out.returncode == 2 and "search.constraints: 'size<=2' is not a constraint" in out.stderr
    out = app([*tiny_cli_args, "reward.kind=accuracy", "hydra.run.dir=run"])
    assert out.returncode == 2 and "reward.kind=accuracy rewards accuracy within reward.budget" in out.stderr
    assert "Traceback" not in out.stderr


def test_multirun_sweep_writes_one_run_per_job(tmp_path, app, tiny_cli_args):
    out = app(["-m", *tiny_cli_args, "search.steps=1", "search.num_kernels=1,2", "hydra.sweep.dir=sweep"])
    assert out.returncode == 0, out.stderr[-3000:]
    assert [len(_records(tmp_path / "sweep" / job)) for job in ("0", "1")] == [1, 2]
    assert (tmp_path / "sweep" / "1" / "report.md").is_file()


def test_kill_9_mid_search_then_resume_ends_as_an_uninterrupted_run(tmp_path, app, cli_env, tiny_cli_args):
    args = [*tiny_cli_args, "search.steps=4", "search.num_kernels=2", "evaluation.max_batches=6"]
    full = app([*args, "hydra.run.dir=full"])
    assert full.returncode == 0, full.stderr[-3000:]
    expected = _records(tmp_path / "full")
    assert len(expected) == 8

    proc = subprocess.Popen([sys.executable, "-m", "botorch_archsearch", *args, "hydra.run.dir=killed"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env(tmp_path), cwd=tmp_path)
    journal = tmp_path / "killed" / "journal.jsonl"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.exists() and len(journal.read_bytes().splitlines()) >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the search ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = _records(tmp_path / "killed") if journal.read_text().endswith("\n") else None
    assert not (tmp_path / "killed" / "report.md").exists()

    resumed = app(["resume=killed"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    records = _records(tmp_path / "killed")
    assert _strip(records) == _strip(expected)  # nothing lost, nothing evaluated twice, same result
    if before is not None:
        assert records[: len(before)] == before  # the records written before the kill were kept as they were
    assert (tmp_path / "killed" / "report.md").is_file()


def test_resume_of_a_directory_that_is_not_a_run_is_a_clear_error(tmp_path, app):
    out = app(["resume=nowhere"])
    assert out.returncode == 2 and "not a run directory" in out.stderr


def test_a_second_process_is_refused_while_a_search_holds_the_run_directory(
        tmp_path, app, cli_env, tiny_cli_args):
    """One process per run directory; the lock of a search killed with kill -9 is taken over."""
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "botorch_archsearch", *tiny_cli_args, "search.steps=2",
                             "search.num_kernels=1", "hydra.run.dir=run"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env(tmp_path), cwd=tmp_path)
    deadline = time.monotonic() + 240
    try:
        while f'"pid": {proc.pid},' not in ((run / ".lock").read_text() if (run / ".lock").exists() else "") or \
                not (run / "config.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the search never held its run directory"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGSTOP)  # it keeps the lock for as long as the second process tries
        second = app(["resume=run"])
        assert second.returncode == 2 and "Traceback" not in second.stderr, second.stderr[-3000:]
        assert f"botorch-archsearch: error: run directory '{run}' is in use by process {proc.pid} on " in \
            second.stderr.strip().splitlines()[-1]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    resumed = app(["resume=run"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [r["index"] for r in _records(run)] == [0, 1] and (run / "report.md").is_file()


def test_resume_applies_the_settings_that_may_change_and_refuses_any_other(tmp_path, app, tiny_cli_args):
    first = app([*tiny_cli_args, "search.steps=1", "search.num_kernels=1", "hydra.run.dir=run"])
    assert first.returncode == 0, first.stderr[-3000:]
    refused = app(["resume=run", "search.steps=2", "evaluation.epochs=7"])
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-3000:]
    assert "'evaluation.epochs=7' cannot be applied: evaluation.epochs is part of the run's identity" in refused.stderr
    assert "only search.steps, evaluation.backend, evaluation.dask, evaluation.workers, evaluation.isolation, progress" \
        in refused.stderr
    config = tmp_path / "run" / "config.json"
    original = config.read_text()
    saved = json.loads(original)
    teacher, saved["teacher"]["name"] = saved["teacher"]["name"], "resnet34"  # config.json edited by hand
    config.write_text(json.dumps(saved))
    edited = app(["resume=run"])
    assert edited.returncode == 2 and "Traceback" not in edited.stderr, edited.stderr[-3000:]
    assert f'in teacher.name: started with {json.dumps(teacher)}, given "resnet34"' in edited.stderr
    config.write_text(original)
    extended = app(["resume=run", "search.steps=2", "++progress=false"])
    assert extended.returncode == 0, extended.stderr[-3000:]
    assert [r["step"] for r in _records(tmp_path / "run")] == [1, 2]  # the run was extended by one step
    assert json.loads(config.read_text())["search"]["steps"] == 2 and json.loads(config.read_text())["progress"] is False


def test_joblib_launcher_runs_a_two_job_sweep(tmp_path, app, tiny_cli_args):
    out = app(["-m", "hydra/launcher=local_parallel", *tiny_cli_args, "search.steps=1", "search.num_kernels=1",
               "search.init=random",  # a random first student
               "seed=0,1", "hydra.sweep.dir=sweep"])
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Joblib" in out.stdout + out.stderr  # the joblib launcher ran the jobs
    first, second = (_records(tmp_path / "sweep" / job) for job in ("0", "1"))
    assert len(first) == len(second) == 1 and first[0]["key"] != second[0]["key"]  # seeds 0 and 1


def test_ctrl_c_ends_with_one_line_naming_how_to_resume(tmp_path, app, cli_env, tiny_cli_args):
    args = [*tiny_cli_args, "search.steps=3", "search.num_kernels=2", "evaluation.max_batches=6",
            "evaluation.isolation=process"]  # the CPU default: a worker process trains
    # The app as started from a terminal: where the tests run in the background of a non-interactive
    # shell, SIGINT is ignored and a child inherits that (Python then installs no KeyboardInterrupt
    # handler); a handled signal is reset to its default in the child.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "botorch_archsearch", *args, "hydra.run.dir=interrupted"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env=cli_env(tmp_path), cwd=tmp_path)
    finally:
        signal.signal(signal.SIGINT, previous)
    journal = tmp_path / "interrupted" / "journal.jsonl"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.exists() and len(journal.read_bytes().splitlines()) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the search ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == 130
    assert stderr.splitlines() == [
        f"interrupted; resume with: python -m botorch_archsearch resume={tmp_path / 'interrupted'}"
    ]
    assert not (tmp_path / "interrupted" / "report.md").exists()
    resumed = app([stderr.split()[-1]])  # the printed resume= argument, as given
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert len(_records(tmp_path / "interrupted")) == 6 and (tmp_path / "interrupted" / "report.md").is_file()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["search.skip=flase"], "search.skip must be true or false, got 'flase'."),
        (["search.removal=maybe"], "search.removal must be true or false, got 'maybe'."),
        (["progress=maybe"], "progress must be true, false or null (progress bars only on a terminal), got 'maybe'"),
        (["-m", "search.steps=1", "seed=0,zero"], "seed must be an integer, got 'zero'."),
        (["+search.kernels=3"], "search: unknown key 'kernels'; accepted: ['baselines', "),
        (["~search.steps"], "'~search.steps': a key of the config cannot be removed"),
        (["evaluation.device=cuda:99"], "evaluation.device='cuda:99', but "),  # no CUDA build, or no 100th GPU
        (["hydra.run.dir=a_file/run"], "cannot create the run directory (hydra.run.dir) 'a_file/run': Not a dir"),
        (["teacher.cache_dir=a_file/teachers"],
         "cannot create the teacher cache directory (teacher.cache_dir, or $BOTORCH_ARCHSEARCH_CACHE) 'a_file/"),
    ],
    ids=["boolean", "maybe", "nullable-boolean", "sweep", "unknown-key", "delete", "cuda", "run-dir", "cache-dir"],
)
def test_one_line_error_and_exit_2_before_any_work(tmp_path, overrides, message, app, tiny_cli_args):
    (tmp_path / "a_file").write_text("a file where a folder is expected")
    flags = [a for a in overrides if a.startswith("-")]
    out = app([*flags, *tiny_cli_args, "hydra.run.dir=run", *(a for a in overrides if a not in flags)])
    assert out.returncode == 2
    assert len(out.stderr.splitlines()) == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert out.stderr.startswith(f"botorch-archsearch: error: {message}"), out.stderr
    assert not (tmp_path / "run" / "journal.jsonl").exists()


# Teachers from outside the zoo (issue 15): a torchvision model by name, a user's module.

USER_NETS = '''
from torch import nn


def make_net(num_classes, in_channels=3):
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes),
    )


def raises(num_classes, in_channels):
    raise ValueError("depth must be even")


def returns_a_dict(num_classes, in_channels):
    return {"num_classes": num_classes}


class Untraceable(nn.Module):
    def __init__(self, num_classes, in_channels):
        super().__init__()
        self.net = make_net(num_classes, in_channels)

    def forward(self, x):
        return self.net(x) if x.sum() > 0 else -self.net(x)  # control flow on data: torch.fx cannot trace it
'''
# No directory on sys.path but the app's own doing, as with the `botorch-archsearch` command (not `python -m`).
COMMAND = ["-P"] if sys.version_info >= (3, 11) else []


def test_a_torchvision_teacher_by_name_on_a_grayscale_dataset(tmp_path, app, tiny_cli_args):
    args = [a for a in tiny_cli_args if not a.startswith("dataset=")]
    out = app([*args, "dataset=digits", "teacher=torchvision", "teacher.name=mobilenet_v2", "search.steps=1",
               "search.num_kernels=1", "evaluation.isolation=process", "hydra.run.dir=run"])
    assert out.returncode == 0, out.stderr[-3000:]
    records = _records(tmp_path / "run")
    assert len(records) == 1 and records[0]["status"] == "ok", records[0]["reason"]  # trained in the worker process
    assert records[0]["architecture"]["nodes"][0]["in_shape"] == [1, 16, 16]
    teacher = json.loads((tmp_path / "run" / "teacher.json").read_text())
    assert teacher["name"] == "torchvision/mobilenet_v2" and records[0]["params"] < teacher["params"]
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["teacher"]
    assert (saved["kind"], saved["name"], saved["module"]) == ("torchvision", "mobilenet_v2", None)
    [entry] = (tmp_path / "cache" / "teachers").iterdir()
    assert entry.name.startswith("torchvision_mobilenet_v2-digits-")


def test_a_teacher_from_the_user_s_module_in_the_current_directory(tmp_path, cli_env, tiny_cli_args):
    (tmp_path / "mynets.py").write_text(USER_NETS)
    args = [*COMMAND, "-m", "botorch_archsearch", *tiny_cli_args, "teacher=module",
            "teacher.module=mynets:make_net", "search.steps=1", "search.num_kernels=2"]
    run = subprocess.run([sys.executable, *args, "hydra.run.dir=trained"], check=False, capture_output=True,
                         text=True, timeout=300, env=cli_env(tmp_path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert [r["status"] for r in _records(tmp_path / "trained")] == ["ok", "ok"]
    teacher = json.loads((tmp_path / "trained" / "teacher.json").read_text())
    assert teacher["name"] == "mynets:make_net" and teacher["params"] == 7_802  # 432 + 32 + 2304 + 32 + 4608 + 64 + 330
    [entry] = (tmp_path / "cache" / "teachers").iterdir()
    assert entry.name.startswith("mynets_make_net-synthetic-")
    # Its cached weights, given back as a checkpoint: the same teacher, and no new cache entry.
    run = subprocess.run([sys.executable, *args, f"teacher.checkpoint={entry / 'state_dict.pt'}",
                          "hydra.run.dir=loaded"], check=False, capture_output=True, text=True, timeout=300,
                         env=cli_env(tmp_path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    loaded = json.loads((tmp_path / "loaded" / "teacher.json").read_text())
    assert loaded["val_accuracy"] == teacher["val_accuracy"] and loaded["params"] == teacher["params"]
    assert len(list((tmp_path / "cache" / "teachers").iterdir())) == 1


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["teacher=torchvision", "teacher.name=efficientnet_b9"],
         "teacher.name='efficientnet_b9' is not a torchvision classification model (did you mean efficientnet_b"),
        (["teacher=module"], "teacher.module must be set for teacher.kind=module: 'package.module:function'"),
        (["teacher=module", "teacher.module=mynets.make_net"],
         "teacher.module='mynets.make_net': expected 'package.module:function'"),
        (["teacher=module", "teacher.module=theirnets:make_net"],
         ("teacher.module='theirnets:make_net': no module named 'theirnets' on the Python path (searched the current "
          "directory '{cwd}' and sys.path)")),
        (["teacher=module", "teacher.module=mynets:make_nte"],
         ("teacher.module='mynets:make_nte': 'mynets' has no attribute 'make_nte'; its functions and classes: "
          "Untraceable, make_net, raises, returns_a_dict.")),
        (["teacher=module", "teacher.module=mynets:raises"],
         "teacher.module='mynets:raises': raises(num_classes=10, in_channels=3) raised ValueError: depth must be even."),
        (["teacher=module", "teacher.module=mynets:returns_a_dict"],
         ("teacher.module='mynets:returns_a_dict': returns_a_dict(num_classes=10, in_channels=3) returned a dict, "
          "not an nn.Module.")),
        (["teacher.module=mynets:make_net"],
         "teacher.module='mynets:make_net' is set but teacher.kind='zoo' builds teacher.name='resnet18'"),
        (["teacher=module", "teacher.module=mynets:Untraceable"],
         "trace: torch.fx could not trace Untraceable (TraceError: "),
        (["teacher=torchvision", "teacher.checkpoint=other.pt"],
         ("load_teacher: the checkpoint does not fit torchvision/resnet18 (10 classes, 3 channels): missing keys "
          "['bn1.bias', ")),
    ],
    ids=["torchvision-name", "no-module", "module-form", "module-import", "module-attribute", "function-raises",
         "function-returns", "name-and-module", "untraceable", "checkpoint"],
)
def test_a_teacher_that_cannot_be_built_is_one_line_and_exit_2(
        tmp_path, overrides, message, cli_env, tiny_cli_args):
    import torch

    (tmp_path / "mynets.py").write_text(USER_NETS)
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pt")
    out = subprocess.run([sys.executable, *COMMAND, "-m", "botorch_archsearch", *tiny_cli_args,
                          "hydra.run.dir=run", *overrides], check=False, capture_output=True, text=True,
                         timeout=300, env=cli_env(tmp_path), cwd=tmp_path)
    assert out.returncode == 2
    assert len(out.stderr.splitlines()) == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert out.stderr.startswith(f"botorch-archsearch: error: {message.format(cwd=tmp_path)}"), out.stderr
    assert not (tmp_path / "run" / "journal.jsonl").exists()
    assert not list((tmp_path / "cache").rglob("state_dict.pt"))  # refused before the teacher was trained


def _teacher_flops(dataset: str) -> int:
    """The default teacher's MACs per image on ``dataset`` (its size is known before training)."""
    import torch

    from botorch_archsearch.evaluation import load_dataset
    from botorch_archsearch.graph import count_flops, trace
    from botorch_archsearch.models import build_teacher

    data = load_dataset(dataset)
    model = build_teacher("resnet18", num_classes=data.num_classes, in_channels=data.in_channels, width=0.125)
    return count_flops(trace(model.eval(), torch.zeros(1, data.in_channels, data.image_size, data.image_size)))


@pytest.mark.parametrize("method, baselines, target", [
    ("n2n", "[group_lasso,variational_dropout,morphnet]", 0.5),
    ("evolutionary_synthesis", "[]", 1 / 3),
])
def test_the_field_s_methods_run_from_the_cli_and_meet_a_flops_target(tmp_path, app, tiny_cli_args, method,
                                                                      baselines, target):
    # n2n: its second step's children are drawn as its first step's (every child of the first is over the
    # budget: no update), and one is within 1/2; evolutionary synthesis keeps about 0.4-0.5 of the parent per generation
    flops = _teacher_flops("digits")
    out = app([*tiny_cli_args, "dataset=digits", f"search.method={method}", f"search.baselines={baselines}",
               "search.steps=2", "search.num_kernels=2", "methods.n2n_rollouts=2", "methods.evolution_offspring=3",
               "methods.evolution_shrink=0.4", "methods.epochs=1", "methods.max_batches=2", "reward.measure=flops",
               "reward.budget_measure=flops", f"reward.budget={int(target * flops)}", f"search.targets=[{target}]",
               "hydra.run.dir=run"], timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "run"
    records = _records(run)
    teacher = json.loads((run / "teacher.json").read_text())
    assert teacher["flops"] == flops
    methods = [method, *baselines.strip("[]").split(",")] if baselines != "[]" else [method]
    assert list(dict.fromkeys(r["method"] for r in records)) == methods
    for m in methods:
        mine = [r for r in records if r["method"] == m and r["status"] == "ok"]
        best = max(mine, key=lambda r: r["reward"])
        assert best["flops"] <= target * flops and best["reward"] > 0, (m, best["flops"], flops)
        assert all(r["cost"] > 0 for r in mine)
        if m in ("group_lasso", "variational_dropout", "morphnet"):  # students with their own weights
            assert all(r["source"] == m for r in mine) and (run / "sources" / f"{m}.pt").is_file()
            assert mine[0]["overhead_cost"] > 0
    report = (run / "report.md").read_text()
    assert "## Cost" in report and all(f"| {m} |" in report for m in methods)
    assert (run / "plots" / "pareto_flops.png").is_file()


def test_a_pareto_search_from_the_cli_on_digits_trains_and_exports_its_front(tmp_path, app, cli_env, tiny_cli_args):
    out = app([*tiny_cli_args, "dataset=digits", "search.objective=pareto", "search.steps=3", "search.num_kernels=3",
               "final.top_k=2", "hydra.run.dir=run"])
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "run"
    records = [r for r in _records(run) if r["status"] == "ok"]
    final = [json.loads(line) for line in (run / "final.jsonl").read_text().splitlines() if line.strip()]
    front = [r for r in records if not any(s["params"] <= r["params"] and s["accuracy"] >= r["accuracy"]
                                           and (s["params"] < r["params"] or s["accuracy"] > r["accuracy"])
                                           for s in records)]
    assert [f["rank"] for f in final] == list(range(1, min(2, len(front)) + 1))
    assert [f["params"] for f in final] == sorted(f["params"] for f in final)
    assert {f["index"] for f in final} <= {r["index"] for r in front}  # students of the front only
    assert "## Pareto front" in (run / "report.md").read_text()
    # ONNX is tested on every zoo teacher in tests/test_export.py; here the command on a run's front
    export = subprocess.run([sys.executable, "-m", "botorch_archsearch.export", str(run), "--format", "torchscript"],
                            capture_output=True, text=True, timeout=300, env=cli_env(tmp_path), cwd=tmp_path)
    assert export.returncode == 0, export.stderr[-3000:]
    assert all((run / f["path"] / "student.pt").is_file() for f in final)
    assert export.stdout.count("| esnac-") == len(final)
