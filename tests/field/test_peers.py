r"""Tests of the Torch-Pruning peer (botorch_archsearch/field/peers.py): its magnitude pruner at a
FLOPs target, the student distilled by our evaluator."""

from __future__ import annotations

import pytest
import torch

from botorch_archsearch.evaluation import evaluate_students, synthetic_dataset
from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.field.peers import torch_pruning_student
from botorch_archsearch.graph import count_flops, count_params, trace
from botorch_archsearch.models import get_teacher

pytest.importorskip("torch_pruning", reason="torch-pruning is in the pinned set (requirements/pinned.txt)")


@pytest.mark.parametrize("global_pruning", [False, True])
def test_the_peer_meets_a_flops_target_and_is_the_largest_within_it(global_pruning):
    torch.manual_seed(0)
    teacher = get_teacher("resnet18", num_classes=4, in_channels=3, width=0.125).eval()
    example = torch.zeros(1, 3, 16, 16)
    full = count_flops(trace(teacher, example))
    student, info = torch_pruning_student(teacher, example, 1 / 3, global_pruning=global_pruning, steps=50)
    graph = trace(student, example)
    assert info["flops"] == count_flops(graph) <= full / 3
    assert info["params"] == count_params(graph) < count_params(trace(teacher, example))
    # one increment less pruning exceeds the target (it stopped at the first that fits): the same
    # schedule cut one step earlier (ratio max_ratio * i / steps at step i) cannot reach it
    k = info["step"]
    assert k > 1
    with pytest.raises(ArchSearchError, match="it keeps") as error:
        torch_pruning_student(teacher, example, 1 / 3, global_pruning=global_pruning, steps=k - 1,
                              max_ratio=0.99 * (k - 1) / 50)
    assert float(str(error.value).split("it keeps ")[1].split(")")[0]) > 1 / 3
    assert count_flops(trace(teacher, example)) == full  # the teacher is not changed
    data = synthetic_dataset(num_classes=4, in_channels=3, image_size=16, num_train=64, num_val=32, num_test=32)
    [result] = evaluate_students(teacher, [student], data, epochs=1, max_batches=1, batch_size=32, progress=False)
    assert result.ok and 0.0 <= result.accuracy <= 1.0


def test_an_unreachable_target_is_one_clear_error():
    teacher = get_teacher("resnet18", num_classes=4, in_channels=3, width=0.125).eval()
    with pytest.raises(ArchSearchError, match="does not reach 1e-05 of the teacher's flops"):
        torch_pruning_student(teacher, torch.zeros(1, 3, 16, 16), 1e-5, steps=5)
