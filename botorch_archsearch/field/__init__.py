r"""The field's compression methods (``FIELD.md``), each a search method of the harness: the same
evaluator, reward, journal, report and final training as ESNAC.

- ``group_lasso``, ``variational_dropout``, ``morphnet``: regularised training of the teacher,
  then channels kept to each target (:class:`~botorch_archsearch.field.regularised.RegularisedPruning`);
- ``n2n``: N2N's two-stage policy gradient (removal, then shrinkage);
- ``evolutionary_synthesis``: generations of offspring synthesised from the parent's channel
  strengths.

Importing :mod:`botorch_archsearch.search` registers them (``search.method=<name>``).
"""

from botorch_archsearch.field.groups import ChannelSlice, channel_slices, group_norms, group_sizes
from botorch_archsearch.field.regularised import RegularisedPruning

__all__ = [
    "ChannelSlice",
    "RegularisedPruning",
    "channel_slices",
    "group_norms",
    "group_sizes",
]
