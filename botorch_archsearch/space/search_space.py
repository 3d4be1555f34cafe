r"""The compression search space of a teacher: layer removal, layer shrinkage and skip addition.

Paper section 3.2 and appendix 6.4 (ESNAC): every student is an edit of the teacher.
- Layer removal: only layers whose input shape equals their output shape; a removed layer
  becomes an identity.
- Layer shrinkage: layers are grouped by the channel dimension they share (see
  :mod:`~botorch_archsearch.space.channels`); one ratio per group.
- Skip addition: an edge ``i -> j`` only where ``out_shape(i) == in_shape(j)``; the new input is
  summed with ``j``'s other inputs.
The reference sampler draws, per candidate, a removal probability from {0.3, ..., 0.7}, a ratio
uniform in [0, 1) per group, and a skip probability from {0.003, 0.005, 0.01, 0.03, 0.05}.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from botorch_archsearch.exceptions import ArchSearchError, InvalidEditError
from botorch_archsearch.graph.arch_graph import LAYER_TYPES, REMOVABLE_TYPES, ArchGraph, LayerSpec, LayerTable
from botorch_archsearch.space.channels import ChannelModel, ChannelPlan, shuffle_permutation
from botorch_archsearch.space.edits import CHANNEL_ORDERS, Edit
from botorch_archsearch.space.student import Student
from botorch_archsearch.utils.validation import check_choice, check_float, check_int

REMOVAL_PROBS: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7)
SKIP_PROBS: tuple[float, ...] = (0.003, 0.005, 0.01, 0.03, 0.05)


class SearchSpace:
    r"""All edits of one teacher graph, with the reference random sampler.

    Example:
        >>> space = SearchSpace(trace(teacher, torch.randn(1, 3, 32, 32)))
        >>> edits = space.sample(1000, generator=torch.Generator().manual_seed(0))
        >>> students = [space.student(e) for e in edits]
        >>> graphs = [s.graph for s in students]
    """

    def __init__(
        self,
        graph: ArchGraph,
        *,
        removal: bool = True,
        shrinkage: bool = True,
        skip: bool = True,
        channel_multiple: int = 1,
        removal_probs: Sequence[float] = REMOVAL_PROBS,
        shrink_range: tuple[float, float] = (0.0, 1.0),
        skip_probs: Sequence[float] = SKIP_PROBS,
        max_skips_per_layer: int = 6,
        channel_importance: Sequence[np.ndarray] | None = None,
        channel_order: str = "even",
        shrink_spread: float | None = None,
    ) -> None:
        r"""Create the search space of a teacher.

        Args:
            graph: The teacher graph (from :func:`~botorch_archsearch.graph.trace`).
            removal: Whether the sampler removes layers.
            shrinkage: Whether the sampler shrinks channel groups.
            skip: Whether the sampler adds skip connections (off: the paper's
                "removal + shrink" ablation; removal only: ``shrinkage=False, skip=False``).
            channel_multiple: Kept channel counts are rounded up to a multiple of this.
            removal_probs: Per candidate, the removal probability of each removable layer is
                drawn uniformly from these values.
            shrink_range: Shrink ratios are drawn uniformly from ``[low, high)``, within [0, 1).
            skip_probs: Per candidate, the probability of adding each possible skip is drawn
                uniformly from these values.
            max_skips_per_layer: At most this many added skips end in one layer (so that, with
                a layer's own inputs, the encoding's bounded edge list holds them; the default
                fits ``encode``'s ``max_edges=8`` for layers with up to two inputs). The sampler
                keeps the first ones drawn.
            channel_importance: Per channel group, the importance of each channel (from
                :func:`~botorch_archsearch.space.channel_importance`); needed for edits with
                channel order ``"magnitude"``.
            channel_order: The channel order of the edits the sampler draws: ``"even"`` (evenly
                spread kept channels, the reference) or ``"magnitude"`` (the most important).
            shrink_spread: ``None``: each group's ratio is drawn independently (the reference).
                A number ``s``: one ratio ``b`` is drawn per candidate and each group's is
                ``b + s * N(0, 1)``, clipped into ``shrink_range``, so candidates lie near
                uniformly shrunk students (correlated ratios).
        """
        if not isinstance(graph, ArchGraph):
            raise InvalidEditError(f"SearchSpace expects an ArchGraph, got {type(graph).__name__}.")
        check_int("channel_multiple", channel_multiple, 1, where="SearchSpace", error=InvalidEditError)
        check_int("max_skips_per_layer", max_skips_per_layer, 0, where="SearchSpace", error=InvalidEditError)
        removal_probs = _check_probs("removal_probs", removal_probs)
        skip_probs = _check_probs("skip_probs", skip_probs)
        low, high = _check_range(shrink_range)
        check_choice("channel_order", channel_order, CHANNEL_ORDERS, where="SearchSpace", error=InvalidEditError)
        if channel_order == "magnitude" and channel_importance is None:
            raise InvalidEditError(
                "SearchSpace: channel_order='magnitude' needs channel_importance (from "
                "channel_importance(graph, teacher))."
            )
        check_float("shrink_spread", shrink_spread, 0, finite=True, optional=True, what="a number", where="SearchSpace",
                    error=InvalidEditError)
        self.graph = graph
        self.channel_order = channel_order
        self.shrink_spread = None if shrink_spread is None else float(shrink_spread)
        self.removal, self.shrinkage, self.skip = bool(removal), bool(shrinkage), bool(skip)
        self.channel_multiple = channel_multiple
        self.max_skips_per_layer = max_skips_per_layer
        self.removal_probs, self.skip_probs = removal_probs, skip_probs
        self.shrink_range = (low, high)
        try:
            self.channels = ChannelModel(
                graph, channel_multiple, None if channel_importance is None else tuple(channel_importance)
            )
        except (TypeError, ValueError, KeyError, IndexError) as e:  # a graph not made by trace
            raise InvalidEditError(
                f"SearchSpace: the channel structure of the graph cannot be read ({type(e).__name__}: {e}); pass a "
                "graph from trace(), and channel_importance from channel_importance(graph, teacher)."
            ) from None
        nodes = graph.nodes
        last = len(nodes) - 1
        self.removable: tuple[int, ...] = tuple(
            j for j, node in enumerate(nodes)
            if node.op in REMOVABLE_TYPES and node.in_shape == node.out_shape and j != last
            and (len(node.inputs) == 1 or node.op == "mul")
        )
        self.skip_candidates: tuple[tuple[int, int], ...] = _skip_candidates(graph)
        self._skip_set = frozenset(self.skip_candidates)
        self._skip_dst = np.array([j for _, j in self.skip_candidates], dtype=np.int64)
        self._removable_set = frozenset(self.removable)
        self._build = _StudentBuilder(graph)

    @property
    def num_groups(self) -> int:
        """Number of channel groups (one shrink ratio each)."""
        return self.channels.num_groups

    @property
    def options(self) -> dict[str, Any]:
        """The settings this space was made with (to rebuild it with ``SearchSpace(graph, **options)``,
        plus ``channel_importance`` for a ``"magnitude"`` space)."""
        return {
            "removal": self.removal,
            "shrinkage": self.shrinkage,
            "skip": self.skip,
            "channel_multiple": self.channel_multiple,
            "removal_probs": list(self.removal_probs),
            "shrink_range": list(self.shrink_range),
            "skip_probs": list(self.skip_probs),
            "max_skips_per_layer": self.max_skips_per_layer,
            "channel_order": self.channel_order,
            "shrink_spread": self.shrink_spread,
        }

    @property
    def has_importance(self) -> bool:
        """Whether this space knows the teacher's channel importance (for ``"magnitude"`` edits)."""
        return self.channels.importance is not None

    def with_importance(self, channel_importance: Sequence[np.ndarray]) -> SearchSpace:
        r"""This space with another channel importance and channel order ``"magnitude"``: its
        edits keep the channels most important by ``channel_importance`` (e.g. the importance a
        pruning method computed on its own weights).

        Args:
            channel_importance: Per channel group, the importance of each channel.

        Returns:
            A new search space of the same teacher graph and settings.
        """
        options = {**self.options, "channel_order": "magnitude"}
        options["shrink_range"] = tuple(options["shrink_range"])
        return SearchSpace(self.graph, channel_importance=channel_importance, **options)

    def identity_edit(self) -> Edit:
        """The edit that changes nothing (it gives back the teacher)."""
        return Edit((False,) * self.graph.num_layers, (0.0,) * self.num_groups, (), self.channel_order)

    def uniform_edit(self, ratio: float, channel_order: str | None = None) -> Edit:
        r"""The edit that shrinks every channel group by ``ratio`` and removes and adds nothing.

        Args:
            ratio: The shrink ratio in ``[0, 1)``.
            channel_order: ``"even"`` or ``"magnitude"`` (default: the space's).

        Returns:
            The edit.
        """
        edit = Edit((False,) * self.graph.num_layers, (float(ratio),) * self.num_groups, (),
                    self.channel_order if channel_order is None else channel_order)
        self.check(edit)
        return edit

    def check(self, edit: Edit) -> None:
        r"""Raise :class:`InvalidEditError` if ``edit`` does not fit this space.

        Args:
            edit: The edit to check.
        """
        if not isinstance(edit, Edit):
            raise InvalidEditError(f"Expected an Edit, got {type(edit).__name__}.")
        if len(edit.remove_mask) != self.graph.num_layers:
            raise InvalidEditError(
                f"Edit.remove_mask has {len(edit.remove_mask)} entries; this space's graph has "
                f"{self.graph.num_layers} layers."
            )
        bad = [j for j, r in enumerate(edit.remove_mask) if r and j not in self._removable_set]
        if bad:
            raise InvalidEditError(
                f"Edit removes layers {bad[:10]} which cannot be removed (input shape != output "
                f"shape, or not a removable type); removable layers are {list(self.removable)[:20]}"
                f"{'...' if len(self.removable) > 20 else ''}."
            )
        if len(edit.shrink_ratios) != self.num_groups:
            raise InvalidEditError(
                f"Edit.shrink_ratios has {len(edit.shrink_ratios)} entries; this space has "
                f"{self.num_groups} channel groups."
            )
        if edit.channel_order == "magnitude" and not self.has_importance:
            raise InvalidEditError(
                "Edit has channel order 'magnitude' but this space has no channel importance; make the space with "
                "SearchSpace(graph, channel_importance=channel_importance(graph, teacher))."
            )
        if any(not 0.0 <= r < 1.0 for r in edit.shrink_ratios):
            raise InvalidEditError(
                f"Edit.shrink_ratios must lie in [0, 1), got {[r for r in edit.shrink_ratios if not 0 <= r < 1][:5]}."
            )
        per_layer: dict[int, int] = {}
        for _, j in edit.skips:
            per_layer[j] = per_layer.get(j, 0) + 1
        crowded = {j: c for j, c in per_layer.items() if c > self.max_skips_per_layer}
        if crowded:
            raise InvalidEditError(
                f"Edit adds more than max_skips_per_layer={self.max_skips_per_layer} skips into "
                f"layers {crowded} (layer: skips)."
            )
        bad_skips = [s for s in edit.skips if s not in self._skip_set]
        if bad_skips:
            raise InvalidEditError(
                f"Edit.skips {bad_skips[:5]} are not allowed: a skip (i, j) needs i < j, i not "
                "already an input of j, j not a concat or gate, and out_shape(i) == in_shape(j)."
            )

    def plan(self, edit: Edit) -> ChannelPlan:
        """The resolved channel plan of ``edit`` (which channels every teacher layer keeps)."""
        self.check(edit)
        return self.channels.plan(edit.remove_mask, edit.shrink_ratios, edit.skips, edit.channel_order)

    def student(self, edit: Edit) -> Student:
        r"""Apply an edit to the teacher and return the student (the teacher is unchanged).

        Removed layers are dropped (a removed layer that received an added skip becomes an
        ``add``); layers keep their teacher attributes with the kept channel counts. The student
        knows which teacher layer and channels each of its layers keeps, so
        :func:`~botorch_archsearch.graph.build_student` inherits the teacher's weights through it.

        Args:
            edit: An edit of this space.

        Returns:
            The student.
        """
        return self._build(self.plan(edit), edit)

    def apply(self, edit: Edit) -> ArchGraph:
        r"""The architecture of :meth:`student` (for callers that only encode, count or compare it).

        Args:
            edit: An edit of this space.

        Returns:
            The student graph.
        """
        return self.student(edit).graph

    def student_from_dict(self, data: dict[str, Any]) -> Student:
        r"""Rebuild a student written by :meth:`Student.to_dict` (or a search journal record, which
        has the same ``architecture`` and ``edit`` entries) by replaying its edit on this teacher.

        Args:
            data: The dictionary (as read from JSON).

        Returns:
            The student, with the same architecture and inherited weights as when it was written.

        Raises:
            ArchSearchError: If ``data`` lacks the entries, or its edit does not give its
                architecture on this teacher (it was written for another teacher or search space).
        """
        if not isinstance(data, dict) or "edit" not in data or "architecture" not in data:
            found = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ArchSearchError(
                "SearchSpace.student_from_dict expects a dictionary with 'architecture' and 'edit' entries "
                f"(as written by Student.to_dict), got {found!r}."
            )
        try:
            student = self.student(Edit.from_dict(data["edit"]))
        except (ArchSearchError, KeyError, TypeError, ValueError, IndexError) as error:
            raise ArchSearchError(
                f"SearchSpace.student_from_dict: the edit does not apply to this teacher ({type(error).__name__}: "
                f"{error}); it was written "
                "for another teacher or search space."
            ) from None
        architecture = ArchGraph.from_dict(data["architecture"])
        if architecture.key() != student.key():
            raise ArchSearchError(
                "SearchSpace.student_from_dict: the edit gives another architecture on this teacher than the one "
                f"written ({student.graph!r}, written {architecture!r}); it was written for another teacher or "
                "search space."
            )
        return student

    def sample(self, n: int, generator: torch.Generator | None = None) -> list[Edit]:
        r"""Draw ``n`` random edits with the reference sampling scheme.

        Args:
            n: Number of edits.
            generator: Random number generator (for reproducibility).

        Returns:
            A list of ``n`` edits.
        """
        check_int("n", n, 0, where="SearchSpace.sample", error=InvalidEditError)
        L, R, G, S = self.graph.num_layers, len(self.removable), self.num_groups, len(self.skip_candidates)
        kw = {"generator": generator}
        rm_p = torch.tensor(self.removal_probs)[torch.randint(len(self.removal_probs), (n,), **kw)]
        remove = (torch.rand(n, R, **kw) < rm_p[:, None]) if self.removal else torch.zeros(n, R, dtype=torch.bool)
        low, high = self.shrink_range
        if self.shrink_spread is None:
            ratios = low + (high - low) * torch.rand(n, G, dtype=torch.float64, **kw)
        else:
            base = low + (high - low) * torch.rand(n, 1, dtype=torch.float64, **kw)
            ratios = base + self.shrink_spread * torch.randn(n, G, dtype=torch.float64, **kw)
            ratios = ratios.clamp(low, high).clamp(max=float(np.nextafter(1.0, 0.0)))
        if not self.shrinkage:
            ratios.zero_()
        sk_p = torch.tensor(self.skip_probs)[torch.randint(len(self.skip_probs), (n,), **kw)]
        skips = (torch.rand(n, S, **kw) < sk_p[:, None]) if self.skip else torch.zeros(n, S, dtype=torch.bool)
        masks = np.zeros((n, L), dtype=bool)
        masks[:, list(self.removable)] = remove.numpy()
        skip_rows = skips.numpy()
        if S:  # the per-layer cap: the first skips drawn (in candidate order) are kept
            skip_rows = self.cap_skips(np.zeros_like(skip_rows), skip_rows)
        return self.edits_from_arrays(masks, ratios.numpy(), skip_rows, [self.channel_order] * n)

    def cap_skips(self, kept: np.ndarray, added: np.ndarray) -> np.ndarray:
        r"""Skip indicators ``kept | added`` with at most ``max_skips_per_layer`` skips into one layer.

        Args:
            kept: `n x S` indicators over :attr:`skip_candidates`, already within the cap; all kept.
            added: `n x S` indicators of skips to add; kept in candidate order while the cap allows.

        Returns:
            The `n x S` boolean indicators.
        """
        out = kept | added
        if not out.any():
            return out
        cap, dst = self.max_skips_per_layer, self._skip_dst
        per_dst = np.zeros((len(out), self.graph.num_layers), dtype=np.int64)
        rows, cols = np.nonzero(out)
        np.add.at(per_dst, (rows, dst[cols]), 1)
        for c in np.flatnonzero((per_dst > cap).any(1)):
            count = np.bincount(dst[kept[c]], minlength=self.graph.num_layers)
            for s in np.flatnonzero(added[c] & ~kept[c]):
                j = dst[s]
                count[j] += 1
                out[c, s] = count[j] <= cap
        return out

    def edits_from_arrays(self, masks: np.ndarray, ratios: np.ndarray, skips: np.ndarray,
                          orders: Sequence[str]) -> list[Edit]:
        r"""Edits from arrays: `n x L` removal flags, `n x G` ratios, `n x S` skip indicators over
        :attr:`skip_candidates`, and one channel order per edit (not checked: the arrays must fit)."""
        cand = self.skip_candidates
        mask_rows, ratio_rows = masks.tolist(), ratios.tolist()
        return [
            Edit(tuple(mask_rows[c]), tuple(ratio_rows[c]), tuple(cand[s] for s in np.flatnonzero(skips[c])),
                 orders[c])
            for c in range(len(mask_rows))
        ]

    @property
    def skip_destinations(self) -> np.ndarray:
        """The destination layer of each of :attr:`skip_candidates` (an integer array)."""
        return self._skip_dst

    def __repr__(self) -> str:
        return (
            f"SearchSpace(layers={self.graph.num_layers}, removable={len(self.removable)}, "
            f"groups={self.num_groups}, skip_candidates={len(self.skip_candidates)}, "
            f"channel_order={self.channel_order!r})"
        )


class _StudentBuilder:
    """Builds student graphs from channel plans with array operations over the teacher table
    (the BO step builds thousands of candidates, so no per-layer Python on this path)."""

    def __init__(self, teacher: ArchGraph) -> None:
        self.teacher = teacher
        table = teacher.table
        n = teacher.num_layers
        self.arange = np.arange(n)
        first_input = np.zeros(n, dtype=np.int64)
        first_edge = np.searchsorted(table.edge_dst, self.arange, side="left")
        has_input = first_edge < len(table.edge_dst)
        first_input[has_input] = table.edge_src[first_edge[has_input]]
        first_input[0] = 0
        self.first_input = first_input
        concat = table.op == LAYER_TYPES.index("concat")
        self.in_source = np.where(concat, self.arange, first_input)
        self.depthwise = (table.op == LAYER_TYPES.index("conv")) & (table.groups > 1) & (
            table.groups == table.in_channels) & (table.groups == table.out_channels)
        self.add_id = LAYER_TYPES.index("add")
        # Edges that are not their destination's first input (a removed gate drops them).
        self.later_edge = np.ones(len(table.edge_dst), dtype=bool)
        self.later_edge[first_edge[has_input]] = False
        self.multi_removable = np.flatnonzero(np.bincount(table.edge_dst, minlength=n) > 1)

    def __call__(self, plan: ChannelPlan, edit: Edit) -> Student:
        t = self.teacher.table
        n = len(t.op)
        removed = np.zeros(n, dtype=bool)
        removed[list(plan.removed)] = True
        skip_src = np.array([i for i, _ in plan.skips], dtype=np.int64)
        skip_dst = np.array([j for _, j in plan.skips], dtype=np.int64)
        keep = ~removed
        keep[skip_dst] = True  # a removed layer that receives a skip stays, as an add
        # Where each teacher layer's output comes from in the student (removed layers splice).
        target = np.where(keep, self.arange, self.first_input)
        while True:
            nxt = target[target]
            if np.array_equal(nxt, target):
                break
            target = nxt
        pos = np.cumsum(keep) - 1
        kept = np.flatnonzero(keep)
        counts = np.asarray(plan.counts, dtype=np.int64)
        as_add = removed[kept]
        out_c = counts[kept]
        op, kernel, stride, padding, groups = (c[kept] for c in t[:5])
        groups = np.where(self.depthwise[kept], out_c, groups)
        if as_add.any():
            op = np.where(as_add, self.add_id, op)
            zero = np.zeros_like(kernel)
            kernel, stride, padding = (np.where(as_add, zero, c) for c in (kernel, stride, padding))
            groups = np.where(as_add, 1, groups)
        edge_kept = keep[t.edge_dst]
        gates_removed = bool(removed[self.multi_removable].any())
        if gates_removed:  # a removed gate keeps its first input only
            edge_kept &= ~(removed[t.edge_dst] & self.later_edge)
        src = pos[target[t.edge_src[edge_kept]]]
        dst = pos[t.edge_dst[edge_kept]]
        if len(skip_src):
            src = np.concatenate([src, pos[target[skip_src]]])
            dst = np.concatenate([dst, pos[skip_dst]])
            order = np.argsort(dst, kind="stable")
            src, dst = src[order], dst[order]
        in_c = counts[self.in_source[kept]]
        if gates_removed:  # the gates' branches no longer reach the output: drop them
            live = _live(len(kept), src, dst)
            if not live.all():
                new_pos = np.cumsum(live) - 1
                edge_live = live[dst]
                src, dst = new_pos[src[edge_live]], new_pos[dst[edge_live]]
                kept, op, kernel, stride, padding, groups, in_c, out_c = (
                    c[live] for c in (kept, op, kernel, stride, padding, groups, in_c, out_c))
        table = LayerTable(op, kernel, stride, padding, groups, in_c, out_c, src, dst)
        kept.setflags(write=False)  # the student's teacher_layers: part of an immutable value
        graph = ArchGraph.from_table(table, functools.partial(_student_layers, self.teacher, plan, table, kept))
        return Student(graph, edit, plan, kept, self.teacher)


def _student_layers(teacher: ArchGraph, plan: ChannelPlan, table: LayerTable, kept: np.ndarray) -> tuple[LayerSpec, ...]:
    """The layers of a student graph, from its table (shapes, attrs of shrunk layers)."""
    nodes = teacher.nodes
    bounds = np.searchsorted(table.edge_dst, np.arange(len(kept) + 1), side="left").tolist()
    src = table.edge_src.tolist()
    out: list[LayerSpec] = []
    for q, j in enumerate(kept.tolist()):
        node = nodes[j]
        inputs = tuple(src[bounds[q]:bounds[q + 1]])
        in_c, out_c = int(table.in_channels[q]), int(table.out_channels[q])
        in_shape = (in_c,) + node.in_shape[1:]
        if LAYER_TYPES[table.op[q]] == "add" and node.op != "add":  # removed layer with a skip
            out.append(LayerSpec("add", inputs, in_shape, in_shape, name=node.name))
            continue
        attrs = node.attrs
        if in_c != node.in_channels or out_c != node.out_channels:
            if node.op == "conv" and node.groups > 1 and int(table.groups[q]) == node.groups:
                per_in = plan.counts_per_group(node.inputs[0], node.groups)
                per_out = plan.counts_per_group(j, node.groups)
                if per_in.min() == 0 or per_out.min() == 0 or np.ptp(per_in) or np.ptp(per_out):
                    sizes = tuple(zip(per_in.tolist(), per_out.tolist()))
                    attrs = tuple(sorted(attrs + (("group_sizes", sizes),)))
            elif node.op == "slice":
                mask = plan.mask(node.inputs[0])
                start = int(mask[: node.attr("start")].sum())
                attrs = (("start", start), ("stop", start + out_c))
            elif node.op == "shuffle":
                mask = plan.mask(node.inputs[0])
                rank = np.cumsum(mask) - 1
                perm = shuffle_permutation(node.in_channels, node.attr("groups"))
                attrs = (("groups", node.attr("groups")), ("perm", tuple(rank[perm[mask[perm]]].tolist())))
        out.append(node._replace(
            inputs=inputs, in_shape=in_shape, out_shape=(out_c,) + node.out_shape[1:],
            groups=int(table.groups[q]), attrs=attrs,
        ))
    return tuple(out)


def _live(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Which of ``n`` layers (edges ``src -> dst``, sorted by ``dst``) reach the last layer."""
    live = np.zeros(n, dtype=bool)
    live[n - 1] = True
    bounds = np.searchsorted(dst, np.arange(n + 1), side="left").tolist()
    sources = src.tolist()
    for q in range(n - 1, 0, -1):
        if live[q]:
            live[sources[bounds[q]:bounds[q + 1]]] = True
    live[0] = True
    return live


def _skip_candidates(graph: ArchGraph) -> tuple[tuple[int, int], ...]:
    """All allowed added edges (i, j): i < j, i not already an input of j, shapes match, j neither
    a concat nor a gate (mul)."""
    nodes = graph.nodes
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, node in enumerate(nodes[:-1]):
        by_shape.setdefault(node.out_shape, []).append(i)
    out = []
    for j, node in enumerate(nodes):
        if j == 0 or node.op in ("concat", "mul"):
            continue
        for i in by_shape.get(node.in_shape, ()):
            if i < j and i not in node.inputs:
                out.append((i, j))
    return tuple(sorted(out))


def _check_probs(name: str, probs: Sequence[float]) -> tuple[float, ...]:
    try:
        values = tuple(float(p) for p in probs)
    except (TypeError, ValueError) as e:
        raise InvalidEditError(f"SearchSpace: {name} must be a sequence of numbers, got {probs!r}.") from e
    if not values or any(not 0.0 <= p <= 1.0 for p in values):
        raise InvalidEditError(
            f"SearchSpace: {name} must be a non-empty sequence of probabilities in [0, 1], got {probs!r}."
        )
    return values


def _check_range(shrink_range: tuple[float, float]) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in shrink_range)
    except (TypeError, ValueError) as e:
        raise InvalidEditError(f"SearchSpace: shrink_range must be (low, high), got {shrink_range!r}.") from e
    if not 0.0 <= low <= high <= 1.0 or low == 1.0:
        raise InvalidEditError(
            f"SearchSpace: shrink_range must satisfy 0 <= low <= high <= 1 and low < 1, got {shrink_range!r}."
        )
    return low, high


__all__ = ["REMOVAL_PROBS", "SKIP_PROBS", "SearchSpace"]
