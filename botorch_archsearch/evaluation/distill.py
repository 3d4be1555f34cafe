r"""Knowledge-distillation evaluation of candidate students (paper section 4.1, appendix 6.1).

A search spends almost all its time here. ``K`` students train in lock-step on the same batches
and share one teacher forward per batch; each is validated after every epoch and its best epoch
is kept. A student that fails (its loss becomes NaN or infinite, it runs out of memory, its
forward raises) is marked failed with the reason and dropped; the others go on.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from botorch_archsearch.evaluation.data import ImageDataset
from botorch_archsearch.evaluation.latency import measure_latency
from botorch_archsearch.evaluation.numerics import training_memory_format
from botorch_archsearch.evaluation.progress import Progress
from botorch_archsearch.utils.precision import use_bf16
from botorch_archsearch.utils.threads import intra_op_threads
from botorch_archsearch.utils.validation import check_choice, check_float, check_int

KD_LOSSES = ("mse", "kl")


@dataclass
class StudentResult:
    r"""The outcome of distilling one student.

    Args:
        accuracy: Best validation accuracy over the epochs (a fraction); 0.0 for a failed student.
        best_epoch: The epoch (1-based) that reached it; 0 if no epoch finished.
        history: Validation accuracy after each finished epoch.
        losses: Mean training loss of each finished epoch.
        status: ``"ok"`` or ``"failed"``.
        reason: Why it failed (``None`` if it did not).
        seconds: Time spent on this student (its forward/backward passes and validation).
        state_dict: The best epoch's weights (on the CPU); ``None`` if no epoch finished.
        latency: Its measured inference latency (:meth:`~botorch_archsearch.evaluation.latency.Latency.to_dict`)
            with ``latency_batch``; ``None`` otherwise or for a failed student.
    """

    accuracy: float = 0.0
    best_epoch: int = 0
    history: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    status: str = "ok"
    reason: str | None = None
    seconds: float = 0.0
    state_dict: dict[str, Tensor] | None = field(default=None, repr=False)
    latency: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """Whether the student trained to the end."""
        return self.status == "ok"


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, loss: str = "mse", temperature: float = 4.0) -> Tensor:
    r"""The distillation loss between student and teacher logits.

    Args:
        student_logits: A `b x classes` tensor.
        teacher_logits: A `b x classes` tensor (no gradient needed).
        loss: ``"mse"``: mean squared error between the logits (the reference's KD);
            ``"kl"``: ``T^2 KL(softmax(t / T) || softmax(s / T))`` (Hinton et al., 2015).
        temperature: ``T`` of ``"kl"``.

    Returns:
        A scalar tensor.
    """
    student_logits, teacher_logits = student_logits.float(), teacher_logits.float()
    if loss == "mse":
        return nn.functional.mse_loss(student_logits, teacher_logits)
    log_p = nn.functional.log_softmax(student_logits / temperature, dim=-1)
    log_q = nn.functional.log_softmax(teacher_logits / temperature, dim=-1)
    return nn.functional.kl_div(log_p, log_q, reduction="batchmean", log_target=True) * temperature**2


@torch.no_grad()
def accuracy(
    model: nn.Module,
    data: ImageDataset,
    split: str = "val",
    batch_size: int = 512,
    device: str | torch.device | None = None,
) -> float:
    r"""Classification accuracy of ``model`` on a split of ``data`` (eval mode, no augmentation).

    Args:
        model: A classifier (its mode is restored afterwards).
        data: The dataset.
        split: ``"train"``, ``"val"`` or ``"test"``.
        batch_size: Images per forward.
        device: Where to compute (default: the dataset's device).

    Returns:
        The fraction of correctly classified images.
    """
    device = data.device if device is None else torch.device(device)
    was_training = model.training
    model.eval()
    correct = total = 0
    try:
        for x, y in data.batches(split, batch_size, augment=False):
            logits = model(x.to(device))
            correct += int((logits.argmax(-1) == y.to(device)).sum())
            total += len(y)
    finally:
        model.train(was_training)
    return correct / max(total, 1)


def evaluate_students(
    teacher: nn.Module,
    students: Sequence[nn.Module],
    data: ImageDataset,
    *,
    epochs: int = 10,
    lr: float = 1e-3,
    weight_decay: float = 5e-4,
    batch_size: int = 128,
    loss: str = "mse",
    temperature: float = 4.0,
    device: str | torch.device | None = None,
    channels_last: bool = True,
    bf16: bool | None = None,
    seed: int = 0,
    max_batches: int | None = None,
    workers: int | None = None,
    progress: bool | None = None,
    latency_batch: int | None = None,
) -> list[StudentResult]:
    r"""Distil ``students`` from ``teacher`` together, in lock-step, and validate every epoch.

    Every batch is drawn once (on the dataset's device, augmented there), the teacher runs once on
    it, and each student takes an Adam step on the distillation loss against the teacher's logits.
    After each epoch every student is validated; the best epoch's weights and accuracy are kept,
    and at the end each student module holds its best epoch's weights.

    A student whose loss becomes NaN or infinite, that runs out of memory, or whose forward or
    backward raises, is marked ``"failed"`` with the reason (its ``accuracy`` is its best
    validation accuracy so far, 0.0 if none) and leaves the loop; nothing is raised for it.

    Args:
        teacher: The trained teacher (kept in eval mode, never updated).
        students: The students (trained in place).
        data: The dataset; its ``train`` split trains, ``val`` validates.
        epochs: Training epochs (paper: 10).
        lr: Adam learning rate (reference: 1e-3).
        weight_decay: Adam weight decay (reference: 5e-4).
        batch_size: Images per batch.
        loss: ``"mse"`` between logits (reference) or ``"kl"`` with ``temperature``.
        temperature: Softmax temperature of ``"kl"``.
        device: Where to train (default: the dataset's device); the dataset is moved there once.
        channels_last: Channels-last memory format for the networks and batches (faster for
            convolutions on CPUs and GPUs alike: about 1.4x for small students on this project's
            CPU) where it computes correctly: each network whose convolutions do not all pass the
            numerics guard (:func:`~botorch_archsearch.evaluation.numerics.channels_last_ok`,
            checked once per configuration and process) trains in the contiguous layout.
        bf16: bfloat16 autocast for the training forward passes (teacher and students;
            validation runs in float32). Default (``None``): on where the device
            computes bf16 natively (:func:`~botorch_archsearch.utils.native_bf16`: CUDA from
            Ampere on, CPUs with AMX), float32 elsewhere. The weights, the optimizer and the
            loss stay float32; on Fashion-MNIST students the validation accuracies moved by
            0.002 on average (rank correlation 1.0 over 16 students), a fifth of what another
            batch order moves them (see ``benchmarks/README.md``).
        seed: Seed of the batch order and augmentation.
        max_batches: Stop each epoch after this many batches (for quick runs and tests).
        workers: Students that take their step at the same time, in threads (default: one per
            intra-op thread on a CPU, ``torch.get_num_threads()``; 1 on CUDA). Small students'
            operations use one CPU thread about as well as two, so on a CPU students side by side,
            one thread each, go about twice as fast; ``torch.set_num_threads`` is set to share the
            threads while they train (restored after). The results do not depend on it.
        progress: Show progress (``None``: only on a terminal); see :class:`Progress`.
        latency_batch: Then measure each trained student's inference latency on ``device`` at
            batch 1 and this batch (:func:`~botorch_archsearch.evaluation.latency.measure_latency`,
            one student at a time, with all of torch's threads): ``StudentResult.latency``.

    Returns:
        One :class:`StudentResult` per student, in order.
    """
    _check_distillation(epochs, batch_size, max_batches, workers, lr, weight_decay, loss)
    check_int("latency_batch", latency_batch, 1, optional=True, where="evaluate_students")
    device = data.device if device is None else torch.device(device)
    data = data.to(device)
    lock_step = _LockStep(
        teacher, students, data, device=device, lr=lr, weight_decay=weight_decay, batch_size=batch_size,
        loss=loss, temperature=temperature, channels_last=channels_last, bf16=use_bf16(bf16, device),
        seed=seed, max_batches=max_batches, workers=workers,
    )
    results = lock_step.run(epochs, progress)
    if latency_batch is not None:
        shape = (data.in_channels, data.image_size, data.image_size)
        sizes = tuple(dict.fromkeys((1, latency_batch)))
        for student, result in zip(students, results):
            if result.ok:
                result.latency = measure_latency(student, shape, device=device, batch_sizes=sizes).to_dict()
    return results


def training_batch_sizes(n: int, batch_size: int, max_batches: int | None) -> tuple[int, ...]:
    """The sizes of the training batches: full ones, and a last smaller one if it is reached."""
    full, rest = divmod(n, batch_size)
    sizes = (batch_size,) if full else ()
    if rest and (max_batches is None or full < max_batches):
        sizes += (rest,)
    return sizes


def _check_distillation(
    epochs: int,
    batch_size: int,
    max_batches: int | None,
    workers: int | None,
    lr: float,
    weight_decay: float,
    loss: str,
) -> None:
    """The argument checks of :func:`evaluate_students`."""
    where = "evaluate_students"
    check_int("epochs", epochs, 1, where=where)
    check_int("batch_size", batch_size, 1, where=where)
    check_int("max_batches", max_batches, 1, optional=True, where=where)
    check_int("workers", workers, 1, optional=True, where=where)
    check_float("lr", lr, 0, exclusive_minimum=True, finite=True, where=where)
    check_float("weight_decay", weight_decay, 0, where=where)
    check_choice("loss", loss, KD_LOSSES, where=where)


@dataclass
class _Run:
    """One student's training state."""

    index: int
    model: nn.Module
    optimizer: torch.optim.Optimizer | None
    result: StudentResult
    loss_sum: float = 0.0
    batches: int = 0
    step_seconds: float = 0.0
    memory_format: torch.memory_format = torch.contiguous_format


class _LockStep:
    """The students of one :func:`evaluate_students` call, the teacher, and their shared batches.

    ``runs`` holds every student; ``active`` those still training. With ``workers > 1`` the
    students' steps (and the teacher's forward on the next batch) run in a thread pool.
    """

    def __init__(
        self,
        teacher: nn.Module,
        students: Sequence[nn.Module],
        data: ImageDataset,
        *,
        device: torch.device,
        lr: float,
        weight_decay: float,
        batch_size: int,
        loss: str,
        temperature: float,
        channels_last: bool,
        bf16: bool,
        seed: int,
        max_batches: int | None,
        workers: int | None,
    ) -> None:
        """Moves the teacher and the students to ``device``, each in its memory format (arguments
        as :func:`evaluate_students`'s, checked; ``data`` already on ``device``)."""
        self.data, self.device, self.batch_size = data, device, batch_size
        self.loss, self.temperature = loss, temperature
        sizes = training_batch_sizes(len(data.train_x), batch_size, max_batches)
        example = data.train_x[:1].to(device, torch.float32)
        layout = functools.partial(training_memory_format, example=example, batch_sizes=sizes, bf16=bf16,
                                   channels_last=channels_last)
        self.teacher_format = layout(teacher)
        self.teacher = teacher.to(device, memory_format=self.teacher_format).eval()
        self.runs = [
            self._prepare(i, student, layout, lr, weight_decay) for i, student in enumerate(students)
        ]
        self.active = [run for run in self.runs if run.result.ok]
        self.generator = torch.Generator().manual_seed(seed)
        num_batches = data.num_batches("train", batch_size)
        self.num_batches = num_batches if max_batches is None else min(num_batches, max_batches)
        self.autocast = functools.partial(torch.autocast, device.type, dtype=torch.bfloat16, enabled=bf16)
        if workers is None:
            workers = 1 if device.type == "cuda" else torch.get_num_threads()
        self.workers = workers
        self.pool: ThreadPoolExecutor | None = None

    def _prepare(
        self, index: int, student: nn.Module, layout: Callable[[nn.Module], torch.memory_format], lr: float,
        weight_decay: float,
    ) -> _Run:
        """A student on the device, in its memory format, in train mode, with its optimizer."""
        result = StudentResult()
        try:
            memory_format = layout(student.to(self.device))
            student.to(memory_format=memory_format).train()
            optimizer = _adam(student, lr, weight_decay, self.device)
        except Exception as error:  # noqa: BLE001 - one bad student must not stop the others
            _fail(result, f"could not be moved to {self.device}: {_describe(error)}", self.device)
            return _Run(index, student, None, result)
        return _Run(index, student, optimizer, result, memory_format=memory_format)

    def run(self, epochs: int, progress: bool | None) -> list[StudentResult]:
        """Train and validate for ``epochs``; load each student's best epoch; the results in order."""
        display = Progress(f"distil {len(self.runs)} students", epochs, enabled=progress)
        with contextlib.ExitStack() as stack:
            if self.workers > 1:  # students in parallel threads, the CPU's threads shared between them
                # Each student computes on the same number of intra-op threads however many there are, so a
                # student's result does not depend on the others (a resumed step evaluates fewer).
                stack.enter_context(intra_op_threads(max(1, torch.get_num_threads() // self.workers)))
                self.pool = stack.enter_context(
                    ThreadPoolExecutor(
                        min(self.workers, max(len(self.runs), 1)), thread_name_prefix="archsearch-student"
                    )
                )
            for epoch in range(1, epochs + 1):
                self._train_epoch(epoch, display)
                self._each(self._validate, epoch)
                self._drop_failed()
                display.epoch(epoch, _status(self.runs, self.active))
        self.pool = None
        display.close()
        for run in self.runs:
            if run.result.state_dict is not None:
                run.model.load_state_dict(run.result.state_dict)
        return [run.result for run in self.runs]

    def _train_epoch(self, epoch: int, display: Progress) -> None:
        """One pass over the training batches, every active student stepping on each."""
        for run in self.active:
            run.loss_sum, run.batches = 0.0, 0
        stream = self._batches()
        upcoming = next(stream, None)
        upcoming_target = self._teacher_forward(upcoming) if upcoming is not None else None
        b = 0
        while upcoming is not None and self.active:
            b += 1
            x, target = upcoming, upcoming_target
            upcoming = next(stream, None)
            # The teacher's forward on the next batch runs beside the students' steps.
            ahead = (
                self.pool.submit(self._teacher_forward, upcoming)
                if self.pool is not None and upcoming is not None else None
            )
            xs = {f: x.contiguous(memory_format=f) for f in {run.memory_format for run in self.active}}
            self._each(self._train_step, xs, target, epoch, b)
            if ahead is not None:
                upcoming_target = ahead.result()
            elif upcoming is not None:
                upcoming_target = self._teacher_forward(upcoming)
            self._drop_failed()
            display.batch(epoch, b, self.num_batches, _status(self.runs, self.active))

    def _batches(self) -> Iterator[Tensor]:
        """The epoch's (shuffled, augmented) training images, in the teacher's memory format."""
        batches = self.data.batches("train", self.batch_size, shuffle=True, generator=self.generator)
        batches = itertools.islice(batches, self.num_batches)
        return (x.contiguous(memory_format=self.teacher_format) for x, _ in batches)

    def _teacher_forward(self, x: Tensor) -> Tensor:
        """The teacher's logits on ``x`` (no gradient; bf16 autocast where enabled)."""
        with torch.no_grad(), self.autocast():
            return self.teacher(x)

    def _each(self, function: Callable[..., None], *args: Any) -> None:
        """``function(run, *args)`` for every active student, in the pool if there is one."""
        if self.pool is not None:  # longest first, so the threads finish together
            order = sorted(self.active, key=lambda run: -run.step_seconds)
            list(self.pool.map(lambda run: function(run, *args), order))
        else:
            for run in self.active:
                function(run, *args)

    def _drop_failed(self) -> None:
        """Failed students leave ``active``."""
        self.active = [run for run in self.active if run.result.ok]

    def _train_step(
        self, run: _Run, xs: dict[torch.memory_format, Tensor], target: Tensor, epoch: int, b: int
    ) -> None:
        """One Adam step of ``run`` on batch ``b`` (``xs``: one copy per memory format); a failure is
        recorded."""
        start = time.perf_counter()
        try:
            with self.autocast():
                value = kd_loss(run.model(xs[run.memory_format]), target, self.loss, self.temperature)
            if not torch.isfinite(value):
                raise _Diverged(f"training loss became {value.item()} at epoch {epoch}, batch {b}")
            run.optimizer.zero_grad(set_to_none=True)
            value.backward()
            run.optimizer.step()
            run.loss_sum += value.item()
            run.batches += 1
        except Exception as error:  # noqa: BLE001 - NaN, out of memory, a broken student
            _fail(run.result, str(error) if isinstance(error, _Diverged) else _describe(error), self.device)
            run.optimizer.zero_grad(set_to_none=True)
        run.step_seconds = time.perf_counter() - start
        run.result.seconds += run.step_seconds

    def _validate(self, run: _Run, epoch: int) -> None:
        """Record ``run``'s validation accuracy and epoch loss; keep its weights if the best so far."""
        start = time.perf_counter()
        try:
            value = accuracy(
                run.model, self.data, "val", batch_size=max(self.batch_size, 256), device=self.device
            )
        except Exception as error:  # noqa: BLE001
            _fail(run.result, f"validation failed: {_describe(error)}", self.device)
            return
        result = run.result
        result.history.append(value)
        result.losses.append(run.loss_sum / max(run.batches, 1))
        if result.best_epoch == 0 or value > result.accuracy:
            result.accuracy, result.best_epoch = value, epoch
            result.state_dict = {
                k: v.detach().to("cpu", copy=True) for k, v in run.model.state_dict().items()
            }
        result.seconds += time.perf_counter() - start


def _adam(model: nn.Module, lr: float, weight_decay: float, device: torch.device) -> torch.optim.Adam:
    """Adam over ``model``'s parameters, with PyTorch's fused implementation where it has one.

    The fused step updates all parameters in a few kernels instead of several small ones per
    parameter; the arithmetic is Adam's.
    """
    if device.type in ("cpu", "cuda") and all(p.is_floating_point() for p in model.parameters()):
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)


class _Diverged(RuntimeError):
    """A student's loss stopped being finite."""


def _fail(result: StudentResult, reason: str, device: torch.device) -> None:
    result.status, result.reason = "failed", reason
    if device.type == "cuda":
        torch.cuda.empty_cache()  # an out-of-memory student's blocks go back to the others


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text:
        return f"out of memory ({type(error).__name__}: {text})"
    return f"{type(error).__name__}: {text}"


def _status(runs: list[_Run], active: list[_Run]) -> str:
    done = [run.result for run in runs if run.result.history]
    best = max(done, key=lambda r: r.accuracy, default=None)
    failed = sum(not run.result.ok for run in runs)
    text = f"{len(active)} training"
    if failed:
        text += f", {failed} failed"
    if best is not None:
        text += f" | best val {best.accuracy:.4f}"
    return text


__all__ = ["KD_LOSSES", "StudentResult", "accuracy", "evaluate_students", "kd_loss"]
