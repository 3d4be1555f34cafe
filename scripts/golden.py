r"""Golden runs: record what the search does today, and check that a restructuring keeps it.

Issue 16 restructures the search; before it, the journals of two fixed searches are recorded here,
and after it the same searches must write the same records, up to timing fields, on the same
machine (floating-point results differ between instruction sets, so the check is only meaningful
where the golden runs were recorded: the machine is written next to them).

- ``default``: the README's main job (the default search on ``digits``), seed 0.
- ``both_synthetic``: ESNAC and random search together (``search=both``) on ``synthetic``, seed 1.

Usage::

    .venv/bin/python scripts/golden.py record   # writes tests/fixtures/golden/<name>/
    .venv/bin/python scripts/golden.py check    # reruns both and compares; exit status 1 on a difference

The trained teachers are cached (``$BOTORCH_ARCHSEARCH_CACHE``, default ``~/.cache``), so a check
reuses the recorded runs' teachers when the cache is the same; the teacher's ``teacher.json`` is
compared too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "fixtures" / "golden"
RUNS: dict[str, list[str]] = {
    "default": ["seed=0"],
    "both_synthetic": ["search=both", "dataset=synthetic", "seed=1", "search.steps=3"],
}
FILES = ("config.json", "journal.jsonl", "final.jsonl", "teacher.json")
TIMING = ("seconds", "search_seconds", "elapsed", "time", "overhead_seconds")  # wall-clock times
ADDED = ("cost", "methods")  # added after the golden runs were recorded (issue 17): new fields, not changed results
SCHEMA = ("format",)  # the journal format version of a record (issue 16): how it is written, not a result
ADDED_KERNEL_KEYS = ("target", "width_init", "warm_start", "name")  # kernel options added in issue 18, at the paper's values


def _run(name: str, run_dir: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"), OMP_WAIT_POLICY="PASSIVE")
    command = [sys.executable, "-m", "botorch_archsearch", *RUNS[name], f"hydra.run.dir={run_dir}", "progress=false"]
    print(f"[golden] {name}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise SystemExit(f"[golden] {name}: the run failed with exit status {done.returncode}")


def _strip(value: object) -> object:
    """``value`` without timing fields, recursively."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in TIMING and k not in ADDED}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _read(path: Path) -> list[object]:
    if not path.is_file():
        return []
    text = path.read_text()
    if path.suffix == ".jsonl":
        return [{k: v for k, v in _strip(json.loads(line)).items() if k not in SCHEMA}
                for line in text.splitlines() if line.strip()]
    return [_strip(json.loads(text))]


def record() -> None:
    for name in RUNS:
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = Path(tmp) / name
            _run(name, run_dir)
            target = GOLDEN / name
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            for file in FILES:
                if (run_dir / file).is_file():
                    shutil.copy(run_dir / file, target / file)
    machine = {"machine": platform.machine(), "processor": _cpu(), "isa": _isa(), "python": platform.python_version()}
    import torch

    machine["torch"] = torch.__version__
    (GOLDEN / "machine.json").write_text(json.dumps(machine, indent=1) + "\n")
    print(f"[golden] recorded {', '.join(RUNS)} in {GOLDEN}", file=sys.stderr)


def check() -> int:
    differences = 0
    for name in RUNS:
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = Path(tmp) / name
            _run(name, run_dir)
            for file in FILES:
                golden, now = _read(GOLDEN / name / file), _read(run_dir / file)
                if file == "config.json":  # the run directory differs
                    for entry in golden + now:
                        entry.get("hydra", {}).pop("run", None) if isinstance(entry, dict) else None
                    for entry in now:  # issue 18's kernel options, checked to be at the paper's values
                        kernel = entry.get("kernel", {}) if isinstance(entry, dict) else {}
                        added = {k: kernel.pop(k) for k in ADDED_KERNEL_KEYS if k in kernel}
                        if added and added != {"target": "reward", "width_init": "paper", "warm_start": False,
                                               "name": "bilstm"}:
                            kernel.update(added)  # not the paper's kernel: a difference
                        reward = entry.get("reward", {}) if isinstance(entry, dict) else {}
                        if reward.get("kind") == "n2n":  # reward.kind (issue 17's budget reward): the paper's
                            del reward["kind"]
                        search = entry.get("search", {}) if isinstance(entry, dict) else {}
                        if search.get("constraints") == []:  # search.constraints (issue 19): none, as then
                            del search["constraints"]
                        if search.get("channel_multiple") == 1:  # search.channel_multiple (issue 19): 1, as then
                            del search["channel_multiple"]
                        if search.get("objective") == "reward":  # search.objective (issue 19): the reward, as then
                            del search["objective"]
                        if "pareto_cost" in search and search["pareto_cost"] is None:
                            del search["pareto_cost"]
                        evaluation = entry.get("evaluation", {}) if isinstance(entry, dict) else {}
                        if "latency_batch" in evaluation and evaluation["latency_batch"] is None:
                            del evaluation["latency_batch"]  # evaluation.latency_batch (issue 19): not measured
                if golden == now:
                    print(f"[golden] {name}/{file}: same ({len(now)} records)")
                    continue
                differences += 1
                first = next((i for i, (a, b) in enumerate(zip(golden, now)) if a != b), min(len(golden), len(now)))
                keys = sorted(k for k in set(golden[first]) | set(now[first]) if golden[first].get(k) != now[first].get(k)) \
                    if first < min(len(golden), len(now)) and isinstance(golden[first], dict) else []
                print(f"[golden] {name}/{file}: DIFFERENT ({len(golden)} golden, {len(now)} now records; first "
                      f"difference at record {first}{f', keys {keys}' if keys else ''})")
    recorded = json.loads((GOLDEN / "machine.json").read_text()) if (GOLDEN / "machine.json").is_file() else {}
    if recorded.get("processor") != _cpu() or recorded.get("isa") != _isa():
        print(f"[golden] note: recorded on {recorded.get('processor')!r} with {recorded.get('isa', 'unrecorded')} "
              f"instruction sets, checked on {_cpu()!r} with {_isa()}: results differ between instruction sets "
              "(oneDNN and ATen pick other kernels), so a difference here says nothing about the code")
    return 1 if differences else 0


def _isa() -> list[str]:
    """The vector instruction sets of the CPU that pick torch's kernels (from ``/proc/cpuinfo``)."""
    try:
        flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError:
        return []
    return [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16") if f in flags]


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("record", "check"))
    args = parser.parse_args()
    if args.action == "record":
        record()
    else:
        raise SystemExit(check())


if __name__ == "__main__":
    main()
