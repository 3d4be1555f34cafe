r"""The edit space of a teacher: layer removal, layer shrinkage, skip addition."""

from botorch_archsearch.space.channels import ChannelModel, ChannelPlan, shuffle_permutation
from botorch_archsearch.space.edits import CHANNEL_ORDERS, Edit
from botorch_archsearch.space.importance import channel_importance
from botorch_archsearch.space.mutation import crossover_edits, mutate_edits, perturb_edits
from botorch_archsearch.space.oneshot import MAGNITUDE_SCOPES, ONESHOT_METHODS, importance_edit, oneshot_edit
from botorch_archsearch.space.search_space import REMOVAL_PROBS, SKIP_PROBS, SearchSpace
from botorch_archsearch.space.student import Student

__all__ = [
    "CHANNEL_ORDERS",
    "ChannelModel",
    "ChannelPlan",
    "Edit",
    "MAGNITUDE_SCOPES",
    "ONESHOT_METHODS",
    "REMOVAL_PROBS",
    "SKIP_PROBS",
    "SearchSpace",
    "Student",
    "channel_importance",
    "crossover_edits",
    "importance_edit",
    "mutate_edits",
    "oneshot_edit",
    "perturb_edits",
    "shuffle_permutation",
]
