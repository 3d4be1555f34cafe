r"""The edit space of a teacher: layer removal, layer shrinkage, skip addition."""

from botorch_archsearch.space.channels import ChannelModel, ChannelPlan, shuffle_permutation
from botorch_archsearch.space.edits import Edit
from botorch_archsearch.space.mutation import crossover_edits, mutate_edits
from botorch_archsearch.space.search_space import REMOVAL_PROBS, SKIP_PROBS, SearchSpace

__all__ = [
    "ChannelModel",
    "ChannelPlan",
    "Edit",
    "REMOVAL_PROBS",
    "SKIP_PROBS",
    "SearchSpace",
    "crossover_edits",
    "mutate_edits",
    "shuffle_permutation",
]
