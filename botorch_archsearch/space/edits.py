r"""An edit of a teacher: which layers to remove, how much to shrink each channel group, which
skip connections to add (paper section 3.2 and appendix 6.4). An edit is plain data: it is
checked and applied by :class:`~botorch_archsearch.space.SearchSpace`, and can be replayed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botorch_archsearch.exceptions import InvalidEditError
from botorch_archsearch.utils.validation import check_choice

CHANNEL_ORDERS: tuple[str, ...] = ("even", "magnitude")


@dataclass(frozen=True)
class Edit:
    r"""One compression edit of a teacher graph.

    Args:
        remove_mask: One flag per teacher layer; ``True`` turns that layer into an identity.
        shrink_ratios: One ratio in ``[0, 1)`` per channel group of the search space: the group
            keeps ``ceil((1 - ratio) * C)`` of its ``C`` channels (rounded up to the channel
            multiple).
        skips: Added edges ``(i, j)`` (teacher layer indices, ``i < j``): the output of layer ``i``
            is summed into the input of layer ``j``.
        channel_order: Which channels a shrunk group keeps: ``"even"``, evenly spread indices
            (the reference), or ``"magnitude"``, the most important ones by the teacher's group
            magnitude (the search space needs the teacher's importance, see
            :func:`~botorch_archsearch.space.channel_importance`).

    Example:
        >>> edit = space.sample(1, generator=torch.Generator().manual_seed(0))[0]
        >>> student = space.student(edit)
    """

    remove_mask: tuple[bool, ...]
    shrink_ratios: tuple[float, ...]
    skips: tuple[tuple[int, int], ...] = ()
    channel_order: str = "even"

    def __post_init__(self) -> None:
        # Normalise to hashable, canonical plain data.
        object.__setattr__(self, "remove_mask", tuple(bool(b) for b in self.remove_mask))
        object.__setattr__(self, "shrink_ratios", tuple(float(r) for r in self.shrink_ratios))
        try:
            skips = tuple(sorted({(int(i), int(j)) for i, j in self.skips}))
        except (TypeError, ValueError) as e:
            raise InvalidEditError(
                f"Edit.skips must be pairs of layer indices (i, j), got {self.skips!r}."
            ) from e
        object.__setattr__(self, "skips", skips)
        check_choice("Edit.channel_order", self.channel_order, CHANNEL_ORDERS, error=InvalidEditError)

    @property
    def num_removed(self) -> int:
        """Number of layers this edit removes."""
        return sum(self.remove_mask)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description (``channel_order`` only where it is not ``"even"``, so
        the edits of earlier journals read back unchanged)."""
        out: dict[str, Any] = {
            "remove": [i for i, r in enumerate(self.remove_mask) if r],
            "num_layers": len(self.remove_mask),
            "shrink_ratios": list(self.shrink_ratios),
            "skips": [list(s) for s in self.skips],
        }
        if self.channel_order != "even":
            out["channel_order"] = self.channel_order
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Edit:
        """Rebuild an edit written by :meth:`to_dict`.

        Args:
            data: The dictionary (as read from JSON).

        Returns:
            The edit.
        """
        try:
            removed = set(data["remove"])
            num_layers = int(data["num_layers"])
            outside = sorted(i for i in removed if not (isinstance(i, int) and 0 <= i < num_layers))
            if outside:
                raise InvalidEditError(
                    f"Edit.from_dict: 'remove' holds layer indices {outside[:5]} outside "
                    f"0..{num_layers - 1} (num_layers={num_layers})."
                )
            mask = tuple(i in removed for i in range(num_layers))
            return cls(mask, tuple(data["shrink_ratios"]), tuple(tuple(s) for s in data["skips"]),
                       data.get("channel_order", "even"))
        except InvalidEditError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidEditError(
                "Edit.from_dict expects keys 'remove', 'num_layers', 'shrink_ratios' and 'skips' "
                f"as written by Edit.to_dict, got {str(data)[:120]!r}."
            ) from e


__all__ = ["CHANNEL_ORDERS", "Edit"]
