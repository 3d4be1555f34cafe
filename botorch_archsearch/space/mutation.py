r"""Variation operators on edits: mutation and uniform crossover (the evolutionary acquisition
optimizer of the paper's Table 6 ablation).

An edit is three components: the removal flags of the removable layers, one shrink ratio per
channel group, and a set of added skips (a 0/1 vector over ``space.skip_candidates``). Both
operators work on those components as arrays, a batch of edits at a time, and only vary the
components whose switch (``space.removal``, ``space.shrinkage``, ``space.skip``) is on; every edit
they return passes ``space.check``. A child keeps its (first) parent's channel order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from botorch_archsearch.exceptions import InvalidEditError
from botorch_archsearch.space.edits import Edit
from botorch_archsearch.space.search_space import SearchSpace
from botorch_archsearch.utils.validation import check_float


def mutate_edits(
    space: SearchSpace,
    edits: Sequence[Edit],
    generator: torch.Generator | None = None,
    rate: float = 0.1,
) -> list[Edit]:
    r"""Mutate each edit independently, component by component.

    - Removal (if ``space.removal``): each removable layer's flag flips with probability ``rate``.
    - Shrinkage (if ``space.shrinkage``): each group's ratio is redrawn uniformly from
      ``space.shrink_range`` with probability ``rate``.
    - Skips (if ``space.skip``): each present skip is dropped with probability ``rate``, and each
      absent candidate skip is added with probability ``rate * mean(space.skip_probs)``, so that
      the number of skips stays near the sampler's (there are thousands of candidates in a
      ResNet-34 space). Added skips that would exceed ``space.max_skips_per_layer`` into one layer
      are dropped, the kept ones first, then the new ones in candidate order.

    Components whose switch is off are copied unchanged. ``rate=0`` returns equal edits.

    Args:
        space: The search space the edits belong to.
        edits: The edits to mutate (each must pass ``space.check``).
        generator: Random number generator (for reproducibility).
        rate: Per-entry mutation probability in ``[0, 1]``.

    Returns:
        One mutated edit per input edit, in order.

    Example:
        >>> parents = space.sample(100, generator=torch.Generator().manual_seed(0))
        >>> children = mutate_edits(space, parents, torch.Generator().manual_seed(1), rate=0.05)
    """
    rate = check_float("rate", rate, 0, 1, what="a probability", where="mutate_edits", error=InvalidEditError)
    masks, ratios, skips = _to_arrays(space, edits, "mutate_edits", "edits")
    n = len(masks)
    kw = {"generator": generator}
    removable = np.asarray(space.removable, dtype=np.int64)
    if space.removal and len(removable):
        flip = (torch.rand(n, len(removable), **kw) < rate).numpy()
        masks[:, removable] ^= flip
    if space.shrinkage and ratios.shape[1]:
        redraw = (torch.rand(n, ratios.shape[1], **kw) < rate).numpy()
        low, high = space.shrink_range
        fresh = low + (high - low) * torch.rand(n, ratios.shape[1], dtype=torch.float64, **kw).numpy()
        ratios = np.where(redraw, _below_one(fresh), ratios)
    if space.skip and skips.shape[1]:
        add_p = rate * float(np.mean(space.skip_probs))
        u = torch.rand(n, skips.shape[1], **kw).numpy()
        kept = skips & (u >= rate)
        added = ~skips & (u < add_p)
        skips = space.cap_skips(kept, added)
    return space.edits_from_arrays(masks, ratios, skips, [e.channel_order for e in edits])


def perturb_edits(
    space: SearchSpace,
    edits: Sequence[Edit],
    generator: torch.Generator | None = None,
    scale: float = 0.1,
) -> list[Edit]:
    r"""Small steps around each edit (local edits, as a trust region around the best students).

    Unlike :func:`mutate_edits`, which redraws a ratio anywhere in its range, every step here is
    small, and ``scale`` sets its size:

    - Shrinkage (if ``space.shrinkage``): every group's ratio moves by a normal step of standard
      deviation ``scale``, clipped into ``space.shrink_range`` (below 1).
    - Removal (if ``space.removal``): each removable layer's flag flips with probability
      ``min(1, 10 * scale / R)`` for ``R`` removable layers: ``10 * scale`` flips on average
      (one at ``scale = 0.1``), whatever the teacher's depth.
    - Skips (if ``space.skip``): each present skip is dropped with probability ``scale``, and each
      absent candidate is added with probability ``scale * mean(space.skip_probs)`` (capped per
      layer as in :func:`mutate_edits`).

    ``scale=0`` returns equal edits. A child keeps its parent's channel order.

    Args:
        space: The search space the edits belong to.
        edits: The edits to perturb (each must pass ``space.check``).
        generator: Random number generator (for reproducibility).
        scale: The step size in ``[0, 1]``.

    Returns:
        One perturbed edit per input edit, in order.

    Example:
        >>> around_best = perturb_edits(space, [best_edit] * 100, torch.Generator().manual_seed(0), scale=0.05)
    """
    scale = check_float("scale", scale, 0, 1, what="a probability", where="perturb_edits", error=InvalidEditError)
    masks, ratios, skips = _to_arrays(space, edits, "perturb_edits", "edits")
    n = len(masks)
    kw = {"generator": generator}
    removable = np.asarray(space.removable, dtype=np.int64)
    if space.removal and len(removable):
        flip = (torch.rand(n, len(removable), **kw) < min(1.0, 10 * scale / len(removable))).numpy()
        masks[:, removable] ^= flip
    if space.shrinkage and ratios.shape[1]:
        low, high = space.shrink_range
        step = scale * torch.randn(n, ratios.shape[1], dtype=torch.float64, **kw).numpy()
        ratios = _below_one(np.clip(ratios + step, low, high))
    if space.skip and skips.shape[1]:
        u = torch.rand(n, skips.shape[1], **kw).numpy()
        kept = skips & (u >= scale)
        added = ~skips & (u < scale * float(np.mean(space.skip_probs)))
        skips = space.cap_skips(kept, added)
    return space.edits_from_arrays(masks, ratios, skips, [e.channel_order for e in edits])


def crossover_edits(
    space: SearchSpace,
    parents_a: Sequence[Edit],
    parents_b: Sequence[Edit],
    generator: torch.Generator | None = None,
) -> list[Edit]:
    r"""Uniform crossover of pairs of edits.

    Child ``c`` takes each removal flag, each group's shrink ratio and each candidate skip's
    presence from ``parents_a[c]`` or ``parents_b[c]`` with probability 1/2 each. Where the child
    ends up with more than ``space.max_skips_per_layer`` skips into one layer, the first ones in
    candidate order are kept. Components whose switch is off are copied from ``parents_a``.

    Args:
        space: The search space the edits belong to.
        parents_a: First parents (each must pass ``space.check``).
        parents_b: Second parents, as many as ``parents_a``.
        generator: Random number generator (for reproducibility).

    Returns:
        One child per pair, in order.

    Example:
        >>> a, b = space.sample(50, generator=g), space.sample(50, generator=g)
        >>> children = crossover_edits(space, a, b, generator=g)
    """
    if len(parents_a) != len(parents_b):
        raise InvalidEditError(
            f"crossover_edits: parents_a and parents_b must have the same length, got "
            f"{len(parents_a)} and {len(parents_b)}."
        )
    masks_a, ratios_a, skips_a = _to_arrays(space, parents_a, "crossover_edits", "parents_a")
    masks_b, ratios_b, skips_b = _to_arrays(space, parents_b, "crossover_edits", "parents_b")
    n = len(masks_a)
    kw = {"generator": generator}
    masks, ratios, skips = masks_a, ratios_a, skips_a
    removable = np.asarray(space.removable, dtype=np.int64)
    if space.removal and len(removable):
        take_b = (torch.rand(n, len(removable), **kw) < 0.5).numpy()
        masks[:, removable] = np.where(take_b, masks_b[:, removable], masks_a[:, removable])
    if space.shrinkage and ratios.shape[1]:
        take_b = (torch.rand(n, ratios.shape[1], **kw) < 0.5).numpy()
        ratios = np.where(take_b, ratios_b, ratios_a)
    if space.skip and skips.shape[1]:
        take_b = (torch.rand(n, skips.shape[1], **kw) < 0.5).numpy()
        child = np.where(take_b, skips_b, skips_a)
        skips = space.cap_skips(np.zeros_like(child), child)
    return space.edits_from_arrays(masks, ratios, skips, [e.channel_order for e in parents_a])


def _below_one(ratios: np.ndarray) -> np.ndarray:
    # low + (high - low) * u can round up to 1.0 in float64; ratios must stay below 1.
    return np.minimum(ratios, np.nextafter(1.0, 0.0))


def _to_arrays(
    space: SearchSpace, edits: Sequence[Edit], caller: str, name: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edits as `n x L` removal flags, `n x G` ratios (float64) and `n x S` skip indicators."""
    if not isinstance(space, SearchSpace):
        raise InvalidEditError(f"{caller}: space must be a SearchSpace, got {type(space).__name__}.")
    if isinstance(edits, Edit) or not isinstance(edits, Sequence):
        raise InvalidEditError(f"{caller}: {name} must be a sequence of Edit, got {type(edits).__name__}.")
    n, L, G, S = len(edits), space.graph.num_layers, space.num_groups, len(space.skip_candidates)
    index = {s: k for k, s in enumerate(space.skip_candidates)}
    try:
        if any(not isinstance(e, Edit) for e in edits):
            raise ValueError
        masks = np.array([e.remove_mask for e in edits], dtype=bool).reshape(n, L)
        ratios = np.array([e.shrink_ratios for e in edits], dtype=np.float64).reshape(n, G)
        cols = [index[s] for e in edits for s in e.skips]
    except (ValueError, KeyError):
        bad = None  # the first edit with a wrong type, length or skip; check() says what
    else:
        skips = np.zeros((n, S), dtype=bool)
        skips[[c for c, e in enumerate(edits) for _ in e.skips], cols] = True
        # The rest of SearchSpace.check, vectorised: removable layers, ratio range, skip cap.
        fixed = np.ones(L, dtype=bool)
        fixed[list(space.removable)] = False
        per_dst = np.zeros((n, L), dtype=np.int64)
        rows, cols = np.nonzero(skips)
        np.add.at(per_dst, (rows, space.skip_destinations[cols]), 1)
        wrong = (masks & fixed).any(1) | ~((ratios >= 0) & (ratios < 1)).all(1)  # NaN too
        wrong |= (per_dst > space.max_skips_per_layer).any(1)
        if not wrong.any():
            return masks, ratios, skips
        bad = int(np.argmax(wrong))
    for c in range(n) if bad is None else (bad,):
        try:
            space.check(edits[c])
        except InvalidEditError as e:
            raise InvalidEditError(f"{caller}: {name}[{c}] does not fit the space: {e}") from e
    raise InvalidEditError(f"{caller}: {name} holds an edit that does not fit the space.")  # pragma: no cover


__all__ = ["crossover_edits", "mutate_edits", "perturb_edits"]
