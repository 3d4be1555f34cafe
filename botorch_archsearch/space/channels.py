r"""Channel groups: which channel dimensions of a teacher must stay identical in every student.

Paper appendix 6.4: "for layers in the same group, the number of channels are always shrinked
with the same ratio". Each layer output is a channel dimension. Channel-wise layers (BN,
activations, pooling, residual adds, depthwise convolutions) tie their output to their input;
convolutions and linear layers start a new, *free* dimension; concat, slice, shuffle and
flatten *derive* their channels from their inputs. The classes of tied dimensions that hold
free dimensions only are the shrinkable channel groups.

A student keeps, in each dimension, a set of the teacher's channel indices (a boolean mask).
A free class keeping ``k`` of ``C`` channels keeps ``k`` evenly spread indices (channel order
``"even"``) or its ``k`` most important channels by the teacher's group magnitude (``"magnitude"``,
see :func:`~botorch_archsearch.space.channel_importance`); either way every block of a grouped
convolution (and every later chunk or shuffle) keeps its share of channels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from botorch_archsearch.exceptions import InvalidEditError
from botorch_archsearch.graph.arch_graph import CHANNELWISE_TYPES, ArchGraph

FREE, TIED, DERIVED = 0, 1, 2


@dataclass(frozen=True)
class ChannelPlan:
    r"""What an edit does to the channels of every teacher layer.

    Args:
        removed: Teacher layers turned into identities (after conflict repair).
        skips: Added edges that were kept (after conflict repair).
        root: For every teacher layer, the representative of its channel class.
        counts: For every teacher layer, the number of output channels kept (an array).
        model: The channel model of the teacher.
        state: The resolved classes (sources, frozen and forced-full classes, ratios).
        masks: Per class root, the boolean mask of kept teacher channels (filled lazily).
        group_counts: Per ``(class root, groups)``, the kept channels in each of ``groups``
            equal blocks (filled lazily).
    """

    removed: frozenset[int]
    skips: tuple[tuple[int, int], ...]
    root: tuple[int, ...]
    counts: np.ndarray
    model: ChannelModel
    state: _PlanState
    masks: dict[int, np.ndarray]
    group_counts: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)

    def mask(self, layer: int) -> np.ndarray:
        """The boolean mask of teacher output channels that layer ``layer`` keeps."""
        return self.model.class_mask(self, self.root[layer])

    def counts_per_group(self, layer: int, groups: int) -> np.ndarray:
        """Kept output channels of layer ``layer`` in each of ``groups`` equal channel blocks."""
        key = (self.root[layer], groups)
        out = self.group_counts.get(key)
        if out is None:
            out = self.group_counts[key] = self.mask(layer).reshape(groups, -1).sum(1)
        return out

    def indices(self, layer: int) -> np.ndarray:
        """The teacher output-channel indices that layer ``layer`` keeps, ascending."""
        return np.flatnonzero(self.mask(layer))


class ChannelModel:
    r"""The channel classes and groups of a teacher graph, computed once per search space.

    Args:
        graph: The teacher graph.
        channel_multiple: Kept channel counts are rounded up to a multiple of this.
        importance: Per channel group (in the order of ``group_roots``), the importance of each
            of its channels, for plans with channel order ``"magnitude"`` (``None``: only
            ``"even"`` plans).
    """

    def __init__(self, graph: ArchGraph, channel_multiple: int = 1,
                 importance: tuple[np.ndarray, ...] | None = None) -> None:
        self.graph = graph
        self.channel_multiple = channel_multiple
        nodes = graph.nodes
        n = len(nodes)
        self.kind = [_dim_kind(graph, j) for j in range(n)]
        self.size = [node.out_channels for node in nodes]
        parent = list(range(n))
        for j, node in enumerate(nodes):
            if self.kind[j] == TIED:
                # A spatial gate (N x 1 x H x W) scales every channel alike: only the map is tied.
                spatial = node.op == "mul" and node.attr("gate") == "spatial"
                for i in node.inputs[:1] if spatial else node.inputs:
                    _union(parent, i, j)
        roots = [_find(parent, j) for j in range(n)]
        self.parent = tuple(roots)

        # Per class (indexed by root): sources, smallest free member, blocks, frozen.
        sources: dict[int, list[int]] = {}
        min_free: dict[int, int] = {}
        blocks = [1] * n
        for j, node in enumerate(nodes):
            r = roots[j]
            if self.kind[j] == DERIVED:
                sources.setdefault(r, []).append(j)
            elif self.kind[j] == FREE:
                min_free[r] = min(min_free.get(r, j), j)
            if node.op == "groupnorm" and node.attr("num_groups") > 1:
                # Every group keeps an equal share of its channels (the student's groups are the
                # teacher's, shrunk), as the blocks of a grouped convolution do.
                rd, g = roots[j], node.attr("num_groups")
                lcm = blocks[rd] * g // math.gcd(blocks[rd], g)
                blocks[rd] = lcm if self.size[j] % lcm == 0 else blocks[rd]
            if node.op == "conv" and 1 < node.groups and self.kind[j] == FREE:
                for dim in (j, node.inputs[0]):
                    rd = roots[dim]
                    lcm = blocks[rd] * node.groups // math.gcd(blocks[rd], node.groups)
                    blocks[rd] = lcm if self.size[dim] % lcm == 0 else blocks[rd]
        frozen = {roots[n - 1]}
        for r, members in sources.items():
            if len(members) > 1 or min_free.get(r, n) < members[0]:
                frozen.add(r)
        # A frozen class keeps every channel, so whatever feeds its sources must too.
        stack = list(frozen)
        while stack:
            r = stack.pop()
            for s in sources.get(r, ()):
                for i in nodes[s].inputs:
                    if roots[i] not in frozen:
                        frozen.add(roots[i])
                        stack.append(roots[i])
        self.frozen = frozenset(frozen)
        self.source = {r: m[0] for r, m in sources.items()}
        self.min_free = min_free
        self.blocks = tuple(blocks)
        group_roots = sorted(
            (r for r in min_free if r not in frozen and r not in self.source), key=min_free.get
        )
        self.first_input = tuple(node.inputs[0] if node.inputs else 0 for node in nodes)
        # Layers that a removal may tie to their input (the search space decides which may be removed);
        # a removed gate (mul) keeps its first input.
        self.removal_candidates = tuple(j for j in range(1, n) if len(nodes[j].inputs) == 1 or nodes[j].op == "mul")
        self.tied_to_input = frozenset(j for j in self.removal_candidates if roots[j] == roots[self.first_input[j]])
        self.grouped_convs = tuple(
            j for j, node in enumerate(nodes) if node.op == "conv" and node.groups > 1 and self.kind[j] == FREE
        )
        self.group_norms = tuple(
            j for j, node in enumerate(nodes) if node.op == "groupnorm" and node.attr("num_groups") > 1
        )
        self.group_of_root = {r: g for g, r in enumerate(group_roots)}
        self.group_roots = tuple(group_roots)
        self.group_members = tuple(
            tuple(j for j in range(n) if roots[j] == r and self.kind[j] == FREE) for r in group_roots
        )
        self.importance = None if importance is None else self._check_importance(importance)

    def _check_importance(self, importance: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        """Each group's importance as float64, divided by its mean (so that tied groups count
        alike when a removal or skip merges them)."""
        if len(importance) != self.num_groups:
            raise InvalidEditError(
                f"channel importance has {len(importance)} entries; the teacher has {self.num_groups} channel groups."
            )
        out = []
        for g, (values, r) in enumerate(zip(importance, self.group_roots)):
            values = np.asarray(values, dtype=np.float64)
            if values.shape != (self.size[r],) or not np.isfinite(values).all() or (values < 0).any():
                raise InvalidEditError(
                    f"channel importance of group {g} must be {self.size[r]} finite values >= 0, got shape "
                    f"{values.shape}."
                )
            mean = values.mean()
            out.append(values / mean if mean > 0 else np.ones_like(values))
        return tuple(out)
    @property
    def num_groups(self) -> int:
        """Number of shrinkable channel groups."""
        return len(self.group_roots)

    def keep_count(self, ratio: float, size: int, blocks: int) -> int:
        """Channels kept of ``size`` for a shrink ``ratio``, a multiple of the channel multiple
        and of ``blocks`` where possible, at least one per block."""
        k = math.ceil((1.0 - ratio) * size - 1e-9)
        step = self.channel_multiple * blocks // math.gcd(self.channel_multiple, blocks)
        if size % step:
            step = blocks
        k = math.ceil(k / step) * step
        return min(size, max(k, blocks))

    def plan(
        self,
        remove_mask: tuple[bool, ...],
        shrink_ratios: tuple[float, ...],
        skips: tuple[tuple[int, int], ...],
        channel_order: str = "even",
    ) -> ChannelPlan:
        r"""Resolve an edit into the channels every teacher layer keeps.

        Removing a layer ties its output channels to its input channels, and a skip ``i -> j``
        ties the output of ``i`` to the input of ``j``. A removal or skip that would tie two
        classes whose channels are both fixed (by a concat/slice/shuffle/flatten, or by being
        frozen) is dropped, in layer order, so that every edit gives a valid student. Tied
        groups use the ratio of the first group (in layer order).

        Args:
            remove_mask: One flag per teacher layer.
            shrink_ratios: One ratio per channel group.
            skips: Added edges ``(i, j)``.
            channel_order: ``"even"`` (evenly spread kept channels) or ``"magnitude"`` (the most
                important ones; a merged class ranks its channels by the sum of its groups'
                normalised importances).

        Returns:
            The plan.
        """
        if channel_order == "magnitude" and self.importance is None:
            raise InvalidEditError(
                "channel order 'magnitude' needs the teacher's channel importance: make the SearchSpace with "
                "channel_importance=channel_importance(graph, teacher)."
            )
        nodes = self.graph.nodes
        parent = list(self.parent)
        source = dict(self.source)
        frozen = set(self.frozen)
        min_free = dict(self.min_free)
        blocks = list(self.blocks)
        big = len(nodes)

        def merge(a: int, b: int) -> bool:
            ra, rb = _find(parent, a), _find(parent, b)
            if ra == rb:
                return True
            ca = ra in frozen or ra in source
            cb = rb in frozen or rb in source
            if ca and cb:
                return False
            s = source.get(ra, source.get(rb))
            if s is not None and min(min_free.get(ra, big), min_free.get(rb, big)) < s:
                return False
            parent[rb] = ra
            if rb in source:
                source[ra] = source.pop(rb)
            if rb in frozen:
                frozen.add(ra)
            if rb in min_free:
                min_free[ra] = min(min_free.get(ra, big), min_free.pop(rb))
            lcm = blocks[ra] * blocks[rb] // math.gcd(blocks[ra], blocks[rb])
            blocks[ra] = lcm if self.size[a] % lcm == 0 else max(blocks[ra], blocks[rb])
            return True

        first_input = self.first_input
        # Channel-wise layers are already tied to their input: removing them needs no merge.
        removed = [
            j for j in self.removal_candidates
            if remove_mask[j] and (j in self.tied_to_input or merge(first_input[j], j))
        ]
        kept_skips = tuple((i, j) for i, j in skips if merge(i, first_input[j]))

        root_array = np.array(parent)
        while True:  # pointer jumping: every entry ends at its class root
            nxt = root_array[root_array]
            if np.array_equal(nxt, root_array):
                break
            root_array = nxt
        roots = tuple(root_array.tolist())
        # Group ratio of each merged class: the first (smallest index) teacher group in it.
        ratio: dict[int, float] = {}
        members: dict[int, list[int]] = {}
        for g, r in enumerate(self.group_roots):
            rr = roots[r]
            if rr not in ratio:
                ratio[rr] = shrink_ratios[g]
            members.setdefault(rr, []).append(g)
        state = _PlanState(frozen, source, blocks, ratio, channel_order, members)
        for _ in range(big + 1):
            plan = ChannelPlan(frozenset(removed), kept_skips, roots, (), self, state, {})
            per_root = {r: self._class_count(plan, r) for r in set(roots)}
            lookup = np.zeros(big, dtype=np.int64)
            lookup[list(per_root)] = list(per_root.values())
            counts = lookup[root_array]
            bad = self._violations(plan, per_root)
            if not bad:
                return replace(plan, counts=counts)
            for r in bad:
                self._force_full(plan, r)
        raise RuntimeError("channel plan did not converge")  # pragma: no cover

    # ------------------------------------------------------------------ internals
    def _class_count(self, plan: ChannelPlan, r: int) -> int:
        state = plan.state
        if r in state.full or r in state.frozen:
            return self.size[r]
        if r in state.source:
            return int(self.class_mask(plan, r).sum())
        return self.keep_count(state.ratio[r], self.size[r], state.blocks[r])

    def class_mask(self, plan: ChannelPlan, r: int) -> np.ndarray:
        """The boolean mask of teacher channels that channel class ``r`` (a root) keeps under
        ``plan`` (computed once per plan and class)."""
        mask = plan.masks.get(r)
        if mask is not None:
            return mask
        state = plan.state
        size = self.size[r]
        if r in state.full or r in state.frozen:
            mask = np.ones(size, dtype=bool)
        elif r in state.source:
            s = state.source[r]
            node = self.graph.nodes[s]
            ins = [self.class_mask(plan, plan.root[i]) for i in node.inputs]
            if node.op == "input":
                mask = np.ones(size, dtype=bool)
            elif node.op == "concat":
                mask = np.concatenate(ins)
            elif node.op == "slice":
                mask = ins[0][node.attr("start"):node.attr("stop")]
            elif node.op == "shuffle":
                mask = ins[0][shuffle_permutation(node.in_channels, node.attr("groups"))]
            else:  # flatten of a C x H x W map
                mask = np.repeat(ins[0], size // node.in_channels)
        else:
            blocks = state.blocks[r]
            k = self.keep_count(state.ratio[r], size, blocks)
            mask = np.zeros(size, dtype=bool)
            if state.order == "magnitude" and k < size:
                # The k / blocks most important channels of each block (ties: the lower index).
                score = sum(self.importance[g] for g in state.members[r]).reshape(blocks, -1)
                top = np.argsort(-score, axis=1, kind="stable")[:, : k // blocks]
                mask.reshape(blocks, -1)[np.arange(blocks)[:, None], top] = True
            else:
                mask[((np.arange(k) + 0.5) * size / k).astype(np.int64)] = True
        plan.masks[r] = mask
        return mask

    def _violations(self, plan: ChannelPlan, per_root: dict[int, int]) -> list[int]:
        """Class roots that must keep every channel: empty dimensions, grouped convolutions with a
        group that has outputs but no inputs, and group norms whose groups would differ in size."""
        bad = [r for r, c in per_root.items() if c == 0]
        state = plan.state
        for j in self.grouped_convs:
            g = self.graph.nodes[j].groups
            i = self.first_input[j]
            r = plan.root[i]
            if r in state.full or r in state.frozen:
                continue  # every input group is complete
            if r not in state.source and state.blocks[r] % g == 0:
                continue  # evenly spread over blocks: every group keeps the same count >= 1
            per_in = plan.counts_per_group(i, g)
            per_out = plan.counts_per_group(j, g)
            if ((per_out > 0) & (per_in == 0)).any():
                bad.append(r)
        for j in self.group_norms:  # every group of a group norm keeps the same number >= 1
            g = self.graph.nodes[j].attr("num_groups")
            r = plan.root[j]
            if r in state.full or r in state.frozen or (r not in state.source and state.blocks[r] % g == 0):
                continue
            per = plan.counts_per_group(j, g)
            if per.min() == 0 or np.ptp(per):
                bad.append(r)
        return bad

    def _force_full(self, plan: ChannelPlan, r: int) -> None:
        """Keep every channel of class ``r`` and of everything its channels derive from."""
        state = plan.state
        stack = [r]
        while stack:
            c = stack.pop()
            if c in state.full:
                continue
            state.full.add(c)
            if c in state.source:
                stack.extend(plan.root[i] for i in self.graph.nodes[state.source[c]].inputs)


@dataclass
class _PlanState:
    frozen: set[int]
    source: dict[int, int]
    blocks: list[int]
    ratio: dict[int, float]
    order: str = "even"
    members: dict[int, list[int]] = field(default_factory=dict)
    full: set[int] = field(default_factory=set)


def shuffle_permutation(channels: int, groups: int) -> np.ndarray:
    r"""The channel permutation of a channel shuffle: output channel ``p`` is input ``perm[p]``.

    Args:
        channels: Number of channels ``C`` (divisible by ``groups``).
        groups: The shuffle groups ``g``.

    Returns:
        A length-``C`` integer array.
    """
    return np.arange(channels).reshape(groups, channels // groups).T.reshape(-1)


def _dim_kind(graph: ArchGraph, j: int) -> int:
    node = graph.nodes[j]
    if node.op in ("input", "concat", "slice", "shuffle"):
        return DERIVED
    if node.op == "flatten":
        return TIED if node.out_channels == node.in_channels else DERIVED
    if node.op in CHANNELWISE_TYPES:
        return TIED
    if node.op == "conv" and node.groups == node.in_channels == node.out_channels and node.groups > 1:
        return TIED  # depthwise: output channel c reads input channel c only
    return FREE


def _find(parent: list[int] | tuple[int, ...], x: int) -> int:
    while parent[x] != x:
        x = parent[x]
    return x


def _union(parent: list[int], a: int, b: int) -> None:
    ra, rb = _find(parent, a), _find(parent, b)
    if ra != rb:
        parent[max(ra, rb)] = min(ra, rb)


__all__ = ["ChannelModel", "ChannelPlan", "shuffle_permutation"]
