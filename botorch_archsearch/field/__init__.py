r"""The field's compression methods (``FIELD.md``), each a search method of the harness: the same
evaluator, reward, journal, report and final training as ESNAC.

- ``group_lasso``, ``variational_dropout``, ``morphnet``: regularised training of the teacher,
  then channels kept to each target (:class:`~botorch_archsearch.field.regularised.RegularisedPruning`);
- ``n2n``: N2N's two-stage policy gradient (removal, then shrinkage);
- ``evolutionary_synthesis``: generations of offspring synthesised from the parent's channel
  strengths;
- :func:`~botorch_archsearch.field.peers.torch_pruning_student`: Torch-Pruning's magnitude pruner,
  the practitioners' peer (an optional dependency, used by ``benchmarks/bench_methods.py``).

Importing :mod:`botorch_archsearch.search` registers them (``search.method=<name>``).
"""

from botorch_archsearch.field.evolution import (
    EvolutionarySynthesis,
    Synthesis,
    expected_size,
    synthesis_probabilities,
)
from botorch_archsearch.field.group_lasso import (
    GroupLasso,
    group_lasso_penalty,
    group_lasso_prox,
    train_group_lasso,
)
from botorch_archsearch.field.groups import (
    ChannelSlice,
    channel_slices,
    group_norms,
    group_sizes,
    zero_channels,
)
from botorch_archsearch.field.morphnet import (
    LayerCost,
    MorphNet,
    alive_flops,
    flop_regularizer,
    layer_costs,
    morphnet_edit,
    morphnet_gammas,
    train_morphnet,
)
from botorch_archsearch.field.n2n import (
    N2N,
    SHRINK_SCALES,
    MovingAverageBaseline,
    N2NState,
    Reinforce,
    RemovalPolicy,
    ShrinkagePolicy,
    group_descriptors,
    layer_descriptors,
    reinforce_loss,
)
from botorch_archsearch.field.peers import torch_pruning_student
from botorch_archsearch.field.regularised import RegularisedPruning
from botorch_archsearch.field.variational_dropout import (
    VariationalDropout,
    add_variational_dropout,
    channel_density,
    density_importance,
    kl_approximation,
    kl_weight,
    remove_variational_dropout,
)

__all__ = [
    "ChannelSlice",
    "EvolutionarySynthesis",
    "GroupLasso",
    "LayerCost",
    "MorphNet",
    "MovingAverageBaseline",
    "N2N",
    "N2NState",
    "RegularisedPruning",
    "Reinforce",
    "RemovalPolicy",
    "SHRINK_SCALES",
    "ShrinkagePolicy",
    "Synthesis",
    "VariationalDropout",
    "add_variational_dropout",
    "alive_flops",
    "channel_density",
    "channel_slices",
    "density_importance",
    "expected_size",
    "flop_regularizer",
    "group_descriptors",
    "group_lasso_penalty",
    "group_lasso_prox",
    "group_norms",
    "group_sizes",
    "kl_approximation",
    "kl_weight",
    "layer_costs",
    "layer_descriptors",
    "morphnet_edit",
    "morphnet_gammas",
    "reinforce_loss",
    "remove_variational_dropout",
    "synthesis_probabilities",
    "torch_pruning_student",
    "train_group_lasso",
    "train_morphnet",
    "zero_channels",
]
