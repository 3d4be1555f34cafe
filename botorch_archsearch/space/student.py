r"""A student: the architecture an edit makes of a teacher, with what it keeps of the teacher.

Paper section 3.2: "a sampled student inherits the teacher's weights". Which weights it inherits
is decided here, by the channel plan of its edit: every student layer comes from one teacher layer
and keeps some of that layer's channels. A :class:`Student` carries that mapping next to its
architecture, so :func:`~botorch_archsearch.graph.build_student` can copy the right slices, and
serialises as its architecture plus its edit, which replays it exactly on the same teacher
(:meth:`~botorch_archsearch.space.SearchSpace.student_from_dict`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from botorch_archsearch.graph.arch_graph import ArchGraph
from botorch_archsearch.space.channels import ChannelPlan
from botorch_archsearch.space.edits import Edit


@dataclass(frozen=True, eq=False, repr=False)
class Student:
    r"""A student of a teacher: its architecture, the edit that made it, and what it keeps.

    Made by :meth:`~botorch_archsearch.space.SearchSpace.student`; pass it to
    :func:`~botorch_archsearch.graph.build_student` to get the network with inherited weights.
    Two students are the same object only (the architecture alone is compared with :meth:`key`).

    Args:
        graph: The student architecture.
        edit: The edit of the teacher that made it.
        plan: The channel plan of ``edit``: which output channels every teacher layer keeps.
        teacher_layers: A `num_layers` integer array: for each student layer, the index of the
            teacher layer it comes from.
        teacher: The teacher graph the edit was applied to.

    Example:
        >>> student = space.student(edit)
        >>> net = build_student(student, teacher)
        >>> again = space.student_from_dict(json.loads(json.dumps(student.to_dict())))
    """

    graph: ArchGraph
    edit: Edit
    plan: ChannelPlan
    teacher_layers: np.ndarray
    teacher: ArchGraph

    def kept_channels(self, layer: int) -> np.ndarray:
        r"""The output channels of teacher layer ``layer`` that this student keeps.

        Args:
            layer: A teacher layer index.

        Returns:
            The kept teacher channel indices, ascending (an integer array).
        """
        return self.plan.indices(layer)

    def key(self) -> str:
        """A digest of the architecture (:meth:`ArchGraph.key`)."""
        return self.graph.key()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description: ``{"architecture": ..., "edit": ...}`` (read back by
        :meth:`~botorch_archsearch.space.SearchSpace.student_from_dict` of the same teacher)."""
        return {"architecture": self.graph.to_dict(), "edit": self.edit.to_dict()}

    def __repr__(self) -> str:
        return (
            f"Student(key={self.key()[:12]!r}, layers={self.graph.num_layers} of {self.teacher.num_layers}, "
            f"removed={len(self.plan.removed)}, skips={len(self.plan.skips)}, "
            f"channel_order={self.edit.channel_order!r})"
        )


__all__ = ["Student"]
