r"""Tests of botorch_archsearch/search/report.py."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.search.report import (
    MAX_FAILED_LINES,
    PLOTS_DIR,
    REPORT_NAME,
    TensorBoardLogger,
    format_params,
    format_ratio,
    format_seconds,
    pareto_front,
    write_report,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOT_NAMES = ("rewards.png", "reward_histogram.png", "pareto.png", "pareto_flops.png")
TEACHER = {
    "name": "resnet18",
    "params": 11_000_000,
    "flops": 550_000_000,
    "val_accuracy": 0.95,
    "test_accuracy": 0.945,
    "seconds": 3600.0,
}


def _record(index, method, params, accuracy, reward, seconds=10.0, status="ok", reason=None):
    return {
        "index": index,
        "method": method,
        "step": index + 1,
        "kernel": None,
        "key": f"k{index}",
        "params": params,
        "flops": 10 * params if params is not None else None,
        "accuracy": accuracy,
        "reward": reward,
        "seconds": seconds,
        "status": status,
        "reason": reason,
        "architecture": {"ignored": True},
    }


def _failed(index, method, reason="CUDA out of memory", seconds=5.0):
    return _record(index, method, None, None, 0.0, seconds=seconds, status="failed", reason=reason)


def _synthetic_records():
    # esnac listed first on purpose: the table must still show random first.
    return [
        _record(0, "esnac", 3_000_000, 0.90, 0.70, seconds=100.0),
        _failed(1, "esnac", reason="loss is NaN\nat epoch 3"),
        _record(2, "esnac", 1_100_000, 0.93, 0.83, seconds=120.0),  # best esnac
        _record(3, "esnac", 900_000, 0.86, 0.80, seconds=110.0),
        _failed(4, "esnac", seconds=30.0),
        _record(5, "random", 5_000_000, 0.92, 0.50, seconds=200.0),
        _record(6, "random", 2_200_000, 0.89, 0.62, seconds=300.0),  # best random
        _failed(7, "random", seconds=50.0),
        _record(8, "random", 8_000_000, 0.94, 0.41, seconds=250.0),
    ]


def _table_rows(text: str) -> dict[str, list[str]]:
    r"""First cell -> cells, for every row of the first Markdown table of ``text``."""
    rows = {}
    for line in text.split("\n\n", 2)[1].splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[cells[0]] = cells
    return rows


def _check_plots(run_dir: Path, text: str) -> None:
    from matplotlib.image import imread

    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(links) == sorted(f"{PLOTS_DIR}/{name}" for name in PLOT_NAMES)
    for link in links:
        path = run_dir / link
        assert path.is_file()
        data = path.read_bytes()
        assert data[:8] == PNG_SIGNATURE
        assert len(data) > 5_000
        pixels = imread(path)
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100
        assert (pixels != pixels[0, 0]).any()  # not a blank image


def _dominates(a: dict, b: dict) -> bool:
    return (
        a["params"] <= b["params"]
        and a["accuracy"] >= b["accuracy"]
        and (a["params"] < b["params"] or a["accuracy"] > b["accuracy"])
    )


@pytest.mark.parametrize("seed", range(6))
def test_pareto_front_matches_brute_force(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 60)
    records = []
    for index in range(n):
        if rng.random() < 0.2:
            # a failed record with an attractive size and accuracy must still be left out
            records.append({**_failed(index, "esnac"), "params": rng.choice([1, 5]), "accuracy": 1.0})
        else:
            # few distinct values: many ties in params, in accuracy and in both
            params = rng.choice([10, 20, 30, 50, 80, 130])
            accuracy = rng.choice([0.5, 0.6, 0.7, 0.8, 0.9])
            records.append(_record(index, rng.choice(["esnac", "random"]), params, accuracy, 0.5))
    rng.shuffle(records)
    ok = [r for r in records if r["status"] == "ok"]
    expected = {r["index"] for r in ok if not any(_dominates(s, r) for s in ok)}
    front = pareto_front(records)
    assert {r["index"] for r in front} == expected
    assert len(front) == len(expected)
    assert [r["params"] for r in front] == sorted(r["params"] for r in front)
    # along the front, more parameters must buy strictly more accuracy
    for a, b in zip(front, front[1:]):
        assert a["params"] == b["params"] and a["accuracy"] == b["accuracy"] or (
            a["params"] < b["params"] and a["accuracy"] < b["accuracy"]
        )


def test_pareto_front_edge_cases():
    assert pareto_front([]) == []
    assert pareto_front([_failed(0, "esnac")]) == []
    twins = [_record(0, "esnac", 100, 0.9, 0.5), _record(1, "random", 100, 0.9, 0.6)]
    assert [r["index"] for r in pareto_front(twins)] == [0, 1]
    nan = _record(2, "esnac", 10, float("nan"), 0.5)
    assert [r["index"] for r in pareto_front(twins + [nan])] == [0, 1]


def test_write_report_table_plots_and_failures(tmp_path):
    records = _synthetic_records()
    path = write_report(tmp_path / "run", records, TEACHER, title="CIFAR-10 ResNet-18")
    assert path == tmp_path / "run" / REPORT_NAME and path.is_file()
    text = path.read_text()
    assert text.startswith("# CIFAR-10 ResNet-18\n")
    header = "| Method | Accuracy | #Params | Ratio | f(x) | Evaluations | Failed | Search time |"
    assert header in text
    assert "Acc. (search)" not in text

    rows = _table_rows(text)
    methods = [line.split(" | ")[0].strip("| ") for line in text.split("\n\n", 2)[1].splitlines()
               if line.startswith("| ")]
    assert methods == ["Method", "---", "Teacher (resnet18)", "random", "esnac"]
    teacher_row = ["Teacher (resnet18)", "94.50%", "11.00M", "1.0x", "-", "-", "-", "-"]
    assert rows["Teacher (resnet18)"] == teacher_row
    # random: best f(x) 0.62 (index 6, 2.2M params), 4 evaluations, 1 failed, 200+300+50+250 s
    assert rows["random"] == ["random", "89.00%", "2.20M", "5.0x", "0.6200", "4", "1", "0:13:20"]
    # esnac: best f(x) 0.83 (index 2, 1.1M params), 5 evaluations, 2 failed, 100+5+120+110+30 s
    assert rows["esnac"] == ["esnac", "93.00%", "1.10M", "10.0x", "0.8300", "5", "2", "0:06:05"]

    _check_plots(tmp_path / "run", text)

    failed_section = text.split("## Failed evaluations", 1)[1]
    assert "- #1 (esnac): loss is NaN at epoch 3" in failed_section
    assert "- #4 (esnac): CUDA out of memory" in failed_section
    assert "- #7 (random): CUDA out of memory" in failed_section
    assert "## Fully trained students" not in text

    # deterministic: the same input gives the same text
    again = write_report(tmp_path / "again", records, TEACHER, title="CIFAR-10 ResNet-18").read_text()
    assert again == text


def test_write_report_all_failed(tmp_path):
    records = [_failed(i, "esnac" if i % 2 else "random", reason=f"error {i}") for i in range(25)]
    text = write_report(tmp_path, records, TEACHER).read_text()
    rows = _table_rows(text)
    assert rows["random"] == ["random", "no successful evaluation", "-", "-", "-", "13", "13", "0:01:05"]
    assert rows["esnac"] == ["esnac", "no successful evaluation", "-", "-", "-", "12", "12", "0:01:00"]
    _check_plots(tmp_path, text)
    failed_section = text.split("## Failed evaluations", 1)[1]
    failed_lines = [line for line in failed_section.splitlines() if line.startswith("- ")]
    assert len(failed_lines) == MAX_FAILED_LINES + 1
    assert failed_lines[0] == "- #0 (random): error 0"
    assert failed_lines[-1] == f"- and {25 - MAX_FAILED_LINES} more"


def test_write_report_single_record_and_no_records(tmp_path):
    record = _record(0, "esnac", 550_000, 0.912, 0.7321, seconds=3725.4)
    text = write_report(tmp_path / "one", [record], {**TEACHER, "test_accuracy": None}).read_text()
    rows = _table_rows(text)
    assert list(rows) == ["Method", "---", "Teacher (resnet18)", "esnac"]
    assert rows["Teacher (resnet18)"][1] == "95.00%"  # no test accuracy: the validation one
    assert rows["esnac"] == ["esnac", "91.20%", "550.0K", "20.0x", "0.7321", "1", "0", "1:02:05"]
    assert "## Failed evaluations\n\nNone." in text
    _check_plots(tmp_path / "one", text)

    text = write_report(tmp_path / "none", [], TEACHER, final=None).read_text()
    assert list(_table_rows(text)) == ["Method", "---", "Teacher (resnet18)"]
    assert "No architecture was evaluated." in text
    _check_plots(tmp_path / "none", text)


def test_write_report_with_final_students(tmp_path):
    records = _synthetic_records()
    final = [
        {"method": "esnac", "index": 3, "rank": 2, "params": 900_000, "flops": 9_000_000,
         "search_accuracy": 0.86, "reward": 0.80, "val_accuracy": 0.90, "test_accuracy": 0.897,
         "seconds": 4000.0, "path": "best/esnac-2"},
        {"method": "esnac", "index": 2, "rank": 1, "params": 1_100_000, "flops": 11_000_000,
         "search_accuracy": 0.93, "reward": 0.83, "val_accuracy": 0.94, "test_accuracy": 0.9375,
         "seconds": 4100.0, "path": "best/esnac-1"},
    ]  # fmt: skip
    text = write_report(tmp_path, records, TEACHER, final=final).read_text()
    header = (
        "| Method | Accuracy | Acc. (search) | #Params | Ratio | f(x) | Evaluations | Failed "
        "| Search time |"
    )
    assert header in text
    rows = _table_rows(text)
    assert rows["Teacher (resnet18)"][1:3] == ["94.50%", "95.00%"]
    # esnac's best (index 2) was trained: test accuracy in "Accuracy", search accuracy beside it
    assert rows["esnac"] == ["esnac", "93.75%", "93.00%", "1.10M", "10.0x", "0.8300", "5", "2", "0:06:05"]
    # random has no trained student: its search accuracy in both
    assert rows["random"][1:3] == ["89.00%", "89.00%"]

    students = text.split("## Fully trained students", 1)[1].split("##", 1)[0]
    lines = [line for line in students.splitlines() if line.startswith("| esnac")]
    assert lines == [
        "| esnac | 1 | 1.10M | 10.0x | 93.00% | 93.75% | 0.8300 | 1:08:20 | `best/esnac-1` |",
        "| esnac | 2 | 900.0K | 12.2x | 86.00% | 89.70% | 0.8000 | 1:06:40 | `best/esnac-2` |",
    ]
    _check_plots(tmp_path, text)


def test_bad_input_raises(tmp_path):
    with pytest.raises(ArchSearchError, match="teacher"):
        write_report(tmp_path, _synthetic_records(), {"name": "x", "params": 0})
    with pytest.raises(ArchSearchError, match=r"records\[1\]"):
        write_report(tmp_path, [_record(0, "esnac", 10, 0.5, 0.5), {"index": 1}], TEACHER)
    with pytest.raises(ArchSearchError, match="final"):
        write_report(tmp_path, _synthetic_records(), TEACHER, final=[{"rank": 1}])


def test_formatting():
    assert format_params(1_234_567) == "1.23M"
    assert format_params(456_700) == "456.7K"
    assert format_params(999) == "999"
    assert format_params(None) == "-"
    assert format_ratio(11_000_000, 890_000) == "12.4x"
    assert format_ratio(100, 0) == "inf"
    assert format_seconds(0.4) == "0:00:00"
    assert format_seconds(3 * 3600 + 62.6) == "3:01:03"
    assert format_seconds(None) == "-"


def test_tensorboard_logger_writes_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    records = [
        _record(0, "random", 2_000_000, 0.90, 0.60),
        _record(1, "esnac", 1_000_000, 0.88, 0.75),
        _failed(2, "esnac"),
        _record(3, "esnac", 500_000, 0.85, 0.81),
    ]
    log_dir = tmp_path / "tensorboard"
    best: dict[str, float] = {}
    with TensorBoardLogger(log_dir) as logger:
        for record in records:
            best[record["method"]] = max(best.get(record["method"], 0.0), record["reward"])
            logger.log_record(record, best_reward=best[record["method"]])
    logger.close()  # a second close does nothing

    accumulator = EventAccumulator(str(log_dir))
    accumulator.Reload()
    names = ("reward", "accuracy", "params", "best_reward")
    expected_tags = {f"{m}/{n}" for m in ("random", "esnac") for n in names}
    assert set(accumulator.Tags()["scalars"]) == expected_tags

    def scalars(tag):
        return [(e.step, e.value) for e in accumulator.Scalars(tag)]

    assert scalars("random/reward") == [(0, pytest.approx(0.60))]
    assert scalars("esnac/reward") == [(1, pytest.approx(0.75)), (2, 0.0), (3, pytest.approx(0.81))]
    # the failed record has no accuracy nor params: those steps are skipped
    assert scalars("esnac/accuracy") == [(1, pytest.approx(0.88)), (3, pytest.approx(0.85))]
    assert scalars("esnac/params") == [(1, 1_000_000.0), (3, 500_000.0)]
    assert scalars("esnac/best_reward") == [
        (1, pytest.approx(0.75)),
        (2, pytest.approx(0.75)),
        (3, pytest.approx(0.81)),
    ]


def test_tensorboard_logger_disabled_writes_nothing(tmp_path):
    log_dir = tmp_path / "tensorboard"
    logger = TensorBoardLogger(log_dir, enabled=False)
    logger.log_record(_record(0, "esnac", 10, 0.5, 0.5), best_reward=0.5)
    logger.close()
    assert not log_dir.exists()
    assert list(tmp_path.iterdir()) == []


def test_tensorboard_logger_rejects_record_without_index(tmp_path):
    with TensorBoardLogger(tmp_path / "tb") as logger:
        with pytest.raises(ArchSearchError, match="index"):
            logger.log_record({"method": "esnac", "reward": 0.5}, best_reward=0.5)


def test_cost_table_sums_each_method_s_evaluations_and_overhead():
    from botorch_archsearch.search.report import cost_table

    records = [
        {**_record(0, "group_lasso", 500_000, 0.90, 0.7, seconds=10.0), "flops": 100_000_000, "cost": 2e12,
         "overhead_cost": 5e13, "overhead_seconds": 120.0},
        {**_record(1, "group_lasso", 300_000, 0.80, 0.6, seconds=20.0), "flops": 60_000_000, "cost": 1e12},
        {**_record(2, "esnac", 400_000, 0.85, 0.75, seconds=30.0), "flops": 80_000_000, "cost": 3e12,
         "overhead_seconds": 5.0},
        {**_record(3, "old", 400_000, 0.85, 0.5, seconds=30.0), "flops": 80_000_000},  # written before costs
    ]
    lines = cost_table(records, TEACHER)
    rows = {line.strip("|").split(" | ")[0].strip(): [c.strip() for c in line.strip("|").split(" | ")]
            for line in lines if line.startswith("|")}
    # group_lasso: 2e12 + 1e12 + 5e13 = 5.3e13, of which 5e13 overhead; 10 + 20 + 120 s; best f(x) is index 0
    assert rows["group_lasso"] == ["group_lasso", "0.7000", "90.00%", "100.00M", "5.5x", "5.3e+13", "5e+13", "0:02:30"]
    assert rows["esnac"] == ["esnac", "0.7500", "85.00%", "80.00M", "6.9x", "3e+12", "0", "0:00:35"]
    assert rows["old"][5:7] == ["-", "-"]


@pytest.mark.parametrize("seed", range(3))
def test_the_latency_front_matches_brute_force_and_the_report_shows_it(tmp_path, seed):
    from botorch_archsearch.search.report import latency_table, size_of

    rng = random.Random(seed)
    records = []
    for index in range(30):
        r = _record(index, rng.choice(["esnac", "random"]), rng.choice([10, 20, 30]), rng.choice([0.5, 0.7, 0.9]), 0.5)
        if index % 7:  # the others were not measured: left out of the latency front
            r["latency"] = {"ms": {"1": rng.choice([1.0, 2.0, 3.0, 4.0]), "8": 9.0}, "device": "cpu: X (1 thread)",
                            "host": "h", "channels_last": bool(index % 2)}
        records.append(r)
    timed = [r for r in records if "latency" in r]
    faster = [(r, s) for r in timed for s in timed if size_of(s, "latency") <= size_of(r, "latency")
              and s["accuracy"] >= r["accuracy"] and (size_of(s, "latency") < size_of(r, "latency")
                                                        or s["accuracy"] > r["accuracy"])]
    expected = {r["index"] for r in timed} - {r["index"] for r, _ in faster}
    assert {r["index"] for r in pareto_front(records, "latency")} == expected
    table = latency_table(records)
    assert table[0] == "| Method | student | Accuracy | #FLOPs | ms at batch 1 | ms at batch 8 | layout |"
    fastest = min((r for r in timed if r["method"] == "random"), key=lambda r: (r["latency"]["ms"]["1"], r["index"]))
    assert any(line.startswith("| random | fastest |") and f"| {fastest['latency']['ms']['1']:.3g} |" in line
               for line in table)
    assert "Measured on cpu: X (1 thread) on h" in table[-1]
    text = write_report(tmp_path / "run", records, TEACHER).read_text()
    assert "## Latency" in text and "plots/pareto_latency.png" in text
    assert (tmp_path / "run" / "plots" / "pareto_latency.png").stat().st_size > 5000
    plain = write_report(tmp_path / "plain", [{k: v for k, v in r.items() if k != "latency"} for r in records],
                         TEACHER).read_text()
    assert "## Latency" not in plain and "pareto_latency" not in plain and latency_table([]) == []
