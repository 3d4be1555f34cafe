r"""The regularised methods of the field (FIELD.md): train a copy of the teacher with a
regulariser that drives whole channels to zero, then keep, at each target size, the channels the
regularised weights rank highest. The students inherit the regularised weights (a
:class:`~botorch_archsearch.search.store.WeightSource` of the run), and are distilled, recorded and
fully trained like every other method's.

A method is a subclass of :class:`RegularisedPruning` that implements :meth:`~RegularisedPruning.regularise`
(the training) and, where its rule is not "keep the most important channels per FLOP" (
:func:`~botorch_archsearch.space.importance_edit`), :meth:`~RegularisedPruning.prune`.
"""

from __future__ import annotations

import copy
import logging
import time
from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from botorch_archsearch.evaluation import TRAIN_FACTOR, images_per_epoch, training_cost
from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.search.policies import OneShot, SearchHistory
from botorch_archsearch.search.records import Proposal
from botorch_archsearch.search.store import WeightSource
from botorch_archsearch.space import Edit, importance_edit, oneshot_edit

logger = logging.getLogger("botorch_archsearch")


class RegularisedPruning(OneShot):
    r"""A method that trains the teacher with a regulariser, then prunes it to each target.

    One student per target (``search.targets``, else the sizes of the best students of the search
    methods run before it, else ``reward.budget``, else the default targets), all from one
    regularised training, which is done once per run (saved as the weight source named after the
    method, and reused on resume). The targets are checked before any training: a target that even
    one channel block per group exceeds is refused then.
    """

    cost_factor: ClassVar[float] = TRAIN_FACTOR
    r"""MAC-images per MAC of the teacher and training image of the regularised training."""

    @abstractmethod
    def regularise(self, model: nn.Module, seed: int) -> tuple[nn.Module, tuple[np.ndarray, ...], dict[str, Any]]:
        r"""Train ``model`` (a copy of the teacher) with the method's regulariser.

        Args:
            model: A copy of the teacher, on the search's device, in training mode.
            seed: The seed of the training's batch order and any sampling.

        Returns:
            ``(trained, importance, info)``: a network of the teacher's architecture with the
            weights the students inherit (e.g. ``model`` itself), per channel group the importance
            of each channel by the method's rule, and what to record about the training (e.g. its
            final loss).
        """

    def prune(self, source: WeightSource, target: float) -> Edit:
        r"""The edit that keeps the source's channels at ``target`` (default: the most important
        per unit of the size measure, :func:`~botorch_archsearch.space.importance_edit`)."""
        return importance_edit(self.context.space, source.importance, target, measure=self.context.size_measure)

    @property
    def source_name(self) -> str:
        r"""The name of the method's weight source in the run."""
        return self.name

    def propose(self, history: SearchHistory, step: int, generator: torch.Generator) -> list[Proposal]:
        targets = self.targets(history)
        if step == 1:
            self.check_targets(targets)
        source, trained_now = self.weight_source()
        fresh = trained_now or not any(r.source == source.name for r in history.records)
        space = self.context.space_for(source.name)
        edit = self.feasible_edit(lambda t: self.prune(source, t), targets[step - 1], space)
        student = space.student(edit)
        # its cost is counted once, in the first record of the source; its time too, where the
        # step's proposal time (which the search adds) does not hold it: a source of a resumed run
        return [Proposal(student, target=targets[step - 1], source=source.name,
                         overhead_cost=float(source.info.get("cost", 0.0)) if fresh else 0.0,
                         overhead_seconds=float(source.info.get("seconds", 0.0)) if fresh and not trained_now else 0.0)]

    def check_targets(self, targets: list[float]) -> None:
        r"""Refuse a target the teacher's channel groups cannot reach (before any training)."""
        for target in targets:
            try:
                oneshot_edit(self.context.space, "uniform", target, measure=self.context.size_measure)
            except ArchSearchError as error:
                raise ArchSearchError(f"{self.name}: {error}".replace("one-shot 'uniform'", "it")) from None

    def weight_source(self) -> tuple[WeightSource, bool]:
        r"""The method's weight source: read from the run, or trained now (``True``)."""
        store = self.context.store
        source = store.source(self.source_name)
        if source is not None:
            return source, False
        from botorch_archsearch.search.loop import derive_seed  # the loop imports the policies

        context, m = self.context, self.context.config.methods
        if context.model is None or context.data is None:
            raise ArchSearchError(f"{self.name}: the search context has no teacher network or data to train.")
        model = copy.deepcopy(context.model).to(context.data.device).train()
        start = time.perf_counter()
        logger.info("%s: regularised training of the teacher for %d epochs", self.name, m.epochs)
        trained, importance, info = self.regularise(model, derive_seed(context.config.seed, self.name, "source"))
        seconds = time.perf_counter() - start
        images = m.epochs * images_per_epoch(len(context.data.train_y), m.batch_size, m.max_batches)
        info = {**info, "method": self.name, "epochs": m.epochs, "images": images, "seconds": seconds,
                "cost": training_cost(context.teacher["flops"], images, self.cost_factor)}
        state = {k: v.detach().cpu().clone() for k, v in trained.state_dict().items()}
        source = WeightSource(self.source_name, state, tuple(np.asarray(v, dtype=np.float64) for v in importance), info)
        store.save_source(source)
        logger.info("%s: regularised training done in %.1f s", self.name, seconds)
        return source, True


__all__ = ["RegularisedPruning"]
