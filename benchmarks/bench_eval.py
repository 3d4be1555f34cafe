r"""Speed of candidate evaluation: K students distilled in lock-step vs a naive loop.

The library path (``evaluate_students``): the dataset is held as tensors on the training device,
batches are sliced and augmented there, the K students train in lock-step on the same batches
and share one teacher forward per batch, then each is validated.

The naive path, written here: a torch ``DataLoader`` over a ``Dataset`` that applies per-sample
torchvision transforms (PIL image -> tensor -> normalise), students trained one after another,
the teacher's forward repeated for every student; then each is validated through a DataLoader.

Both train every student on the same number of batches and validate it on the same images;
the figure is training images per second summed over the students (K x batches x batch size /
time), measured in the same run. The teacher is a freshly initialised tiny ResNet-18 (speed does
not depend on its weights); the students are random edits of it. The library path is timed in
float32 and, where the device computes bf16 natively (the library's default there, see
``botorch_archsearch.utils.native_bf16``), with bf16 autocast; the naive loop is float32.

Also measured, side by side with the lock-step: the numerics guard (the machine canary in its
probe process, and the per-convolution checks of the K students with nothing known yet, as in a
search's first step, and with their configurations known), and the local backend's worker
process (``isolation="process"``, the CPU default) against training in the bench's process: its
start and its cost per step. Run it with ``ONEDNN_MAX_CPU_ISA=AVX2`` too, where the guard sends
every network to the contiguous layout.

Usage: ``.venv/bin/python benchmarks/bench_eval.py [--students 8] [--batches 40] [--width 0.125]
[--dataset fashion_mnist] [--device cpu] [--bf16] [--profile BATCHES] [--skip-isolation]``.
Timings are never asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from botorch_archsearch.evaluation.data import load_dataset
from botorch_archsearch.evaluation import numerics
from botorch_archsearch.evaluation.distill import training_batch_sizes, evaluate_students
from botorch_archsearch.graph import build_student, count_params, trace
from botorch_archsearch.models import get_teacher
from botorch_archsearch.space import SearchSpace
from botorch_archsearch.utils.precision import native_bf16
from botorch_archsearch.utils.torchvision import import_torchvision


class _PerSampleDataset(Dataset):
    """Images as PIL, transformed one by one (what a torchvision dataset does)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, mean, std, augment: bool) -> None:
        tv = import_torchvision()
        self.images = [img for img in x.cpu().numpy()]  # C x H x W uint8
        self.labels = y.cpu().tolist()
        self.pil = tv.transforms.functional.to_pil_image
        steps = []
        if augment:
            size = x.shape[-1]
            steps += [tv.transforms.RandomCrop(size, padding=4), tv.transforms.RandomHorizontalFlip()]
        steps += [tv.transforms.ToTensor(), tv.transforms.Normalize(mean, std)]
        self.transform = tv.transforms.Compose(steps)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        image = self.images[i]
        pil = self.pil(np.ascontiguousarray(image.transpose(1, 2, 0)).squeeze(-1) if image.shape[0] == 1
                       else np.ascontiguousarray(image.transpose(1, 2, 0)))
        return self.transform(pil), self.labels[i]


def naive(teacher: nn.Module, students: list[nn.Module], data, batches: int, batch_size: int,
          device: torch.device) -> float:
    """Students one after another, a per-sample DataLoader, the teacher's forward per student."""
    train = _PerSampleDataset(data.train_x, data.train_y, data.mean, data.std, data.augment != "none")
    val = _PerSampleDataset(data.val_x, data.val_y, data.mean, data.std, False)
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for student in students:
        student.to(device).train()
        optimizer = torch.optim.Adam(student.parameters(), lr=1e-3, weight_decay=5e-4)
        loader = DataLoader(train, batch_size=batch_size, shuffle=True, generator=g)
        for b, (x, _) in enumerate(loader):
            if b == batches:
                break
            x = x.to(device)
            with torch.no_grad():
                target = teacher(x)
            loss = nn.functional.mse_loss(student(x), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        student.eval()
        with torch.no_grad():
            for x, y in DataLoader(val, batch_size=256):
                student(x.to(device)).argmax(-1).eq(y.to(device)).sum()
    return time.perf_counter() - start


PROFILE_GROUPS = {
    "batch norm": ("batch_norm",),
    "convolution": ("convolution",),
    "adds, ReLUs": ("aten::add", "clamp_min", "threshold_backward", "aten::relu"),
    "Adam": ("Optimizer.step", "_fused_adam"),
}


def profile(teacher: nn.Module, students: list[nn.Module], data, batches: int, batch_size: int,
            device: torch.device) -> None:
    """Share of self CPU time per operator group of the float32 lock-step (students one at a time)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        evaluate_students(teacher, students, data, epochs=1, max_batches=batches, batch_size=batch_size,
                          device=device, progress=False, bf16=False, workers=1)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    print(f"profile of the float32 lock-step, {len(students)} students x {batches} batches "
          f"(self CPU time {total / 1e6:.2f} s):")
    for group, needles in PROFILE_GROUPS.items():
        share = sum(e.self_cpu_time_total for e in events if any(n in e.key for n in needles)) / total
        print(f"  {group}: {100 * share:.0f}%")


def isolation(teacher: nn.Module, students, data, args, device: torch.device) -> None:
    """The local backend with its worker process against training in this process, step for step."""
    from botorch_archsearch.search.backends import LocalBackend

    options = {"epochs": 1, "max_batches": args.batches, "batch_size": args.batch_size, "device": device,
               "progress": False, "bf16": native_bf16(device)}
    inside = LocalBackend(teacher, data, options, isolation="none")
    start = time.perf_counter()
    worker = LocalBackend(teacher, data, options, isolation="process")
    started = time.perf_counter() - start
    try:
        start = time.perf_counter()
        worker.evaluate(students[:1], seed=0)  # waits for the worker: its start, the teacher and data sent
        ready = time.perf_counter() - start
        steps = {"process": [], "none": []}
        for repeat in range(args.isolation_repeats):  # alternated, so that the machine's load hits both alike
            for label, backend in (("process", worker), ("none", inside)):
                start = time.perf_counter()
                backend.evaluate(students, seed=repeat)
                steps[label].append(time.perf_counter() - start)
    finally:
        worker.close()
    ratios = sorted(p / n for p, n in zip(steps["process"], steps["none"]))
    print(f"worker process: started in {started:.2f} s (returns at once), first student back after {ready:.1f} s; "
          f"a step of {len(students)} students {min(steps['process']):.1f} s against {min(steps['none']):.1f} s in "
          f"this process (best of {len(ratios)}); worker / this process, repeat by repeat: "
          f"{', '.join(f'{100 * (r - 1):+.1f}%' for r in ratios)} (median {100 * (ratios[len(ratios) // 2] - 1):+.1f}%)",
          flush=True)


def machine_info() -> str:
    try:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "n/a"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, load average {load}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=8)
    parser.add_argument("--batches", type=int, default=40, help="training batches per student")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--val-images", type=int, default=1024, help="validation images per student")
    parser.add_argument("--width", type=float, default=0.125, help="ResNet-18 width multiplier (tiny: 0.125)")
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--profile", type=int, default=0, metavar="BATCHES",
                        help="only profile the float32 lock-step over this many batches (torch.profiler): "
                             "time per operator group")
    parser.add_argument("--skip-isolation", action="store_true", help="do not time the worker process")
    parser.add_argument("--isolation-repeats", type=int, default=3, help="alternated steps timed per backend")
    parser.add_argument("--guard-steps", type=int, default=10,
                        help="search steps of new students whose numerics-guard checks are timed")
    parser.add_argument("--bf16", action="store_true",
                        help="also time bf16 autocast where it is not the default (no native bf16)")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    device = torch.device(args.device)
    wall = time.perf_counter()
    print(machine_info(), flush=True)
    data = load_dataset(args.dataset)
    data = dataclasses.replace(data, val_x=data.val_x[: args.val_images], val_y=data.val_y[: args.val_images])
    print(f"dataset {data.name}: train {tuple(data.train_x.shape)}, validation {len(data.val_y)} images, "
          f"augment {data.augment!r}", flush=True)
    torch.manual_seed(args.seed)
    teacher = get_teacher("resnet18", num_classes=data.num_classes, in_channels=data.in_channels,
                          width=args.width).eval()
    graph = trace(teacher, torch.zeros(1, data.in_channels, data.image_size, data.image_size))
    space = SearchSpace(graph)
    edits = space.sample(args.students, generator=torch.Generator().manual_seed(args.seed))
    edited = [space.student(e) for e in edits]
    teacher_params = count_params(graph)
    sizes = ", ".join(f"{count_params(s.graph) / teacher_params:.2f}" for s in edited)
    print(f"teacher ResNet-18 width {args.width}: {teacher_params:,} parameters; students' size / teacher: {sizes}",
          flush=True)
    images = args.students * args.batches * args.batch_size

    def students() -> list[nn.Module]:
        return [build_student(s, teacher) for s in edited]

    # The numerics guard, from a new probe process: its machine canary, then each student's checks.
    start = time.perf_counter()
    machine = numerics.machine_ok(device.type)
    canary_s = time.perf_counter() - start
    example = data.train_x[:1].float().to(device)
    sizes = training_batch_sizes(len(data.train_x), args.batch_size, args.batches)

    def guard(students_of_step) -> float:
        built = [build_student(s, teacher) for s in students_of_step]
        start = time.perf_counter()
        for student in built:
            numerics.training_memory_format(student, example, sizes, bf16=native_bf16(device))
        return time.perf_counter() - start

    # As in a search: each step's K students are new edits, the verdicts of earlier steps are known.
    guard_steps = [guard(edited)]
    for step in range(1, args.guard_steps):
        more = space.sample(args.students, generator=torch.Generator().manual_seed(args.seed + 1000 + step))
        guard_steps.append(guard([space.student(e) for e in more]))
    guard_known_s = guard(edited)
    layouts = [numerics.training_memory_format(s, example, sizes, bf16=native_bf16(device)) for s in students()]
    print(f"numerics guard: canary {'passed' if machine else 'failed for a family: its networks train contiguous'} "
          f"({canary_s:.2f} s in the probe process, including its start); students' checks per step of "
          f"{args.students} new students: {', '.join(f'{t:.3f}' for t in guard_steps)} s "
          f"(steps 1-{args.guard_steps}), {guard_known_s:.3f} s for students already seen; "
          f"{sum(f == torch.channels_last for f in layouts)} of {len(layouts)} students channels-last", flush=True)

    # Warm-up: first-call costs of oneDNN and autograd.
    evaluate_students(teacher, students()[:2], data, epochs=1, max_batches=2, batch_size=args.batch_size,
                      device=device, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    def lock_step(bf16: bool) -> tuple[float, int]:
        start = time.perf_counter()
        results = evaluate_students(teacher, students(), data, epochs=1, max_batches=args.batches,
                                    batch_size=args.batch_size, device=device, progress=False, bf16=bf16)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start, sum(not r.ok for r in results)

    if args.profile:
        profile(teacher, students(), data, args.profile, args.batch_size, device)
        return
    default_bf16 = native_bf16(device)
    paths = [("float32", False)]
    if default_bf16 or args.bf16:
        paths.append(("bf16 autocast" + (" (the library's default here)" if default_bf16 else
                                         " (what-if: no native bf16 here)"), True))
    print(f"library default on {device}: {'bf16 autocast' if default_bf16 else 'float32'}", flush=True)
    times = {}
    for label, bf16 in paths:
        seconds, failed = lock_step(bf16)
        times[label] = seconds
        print(f"lock-step (library), {label}: {seconds:.1f} s, {images / seconds:,.0f} training images/s "
              f"({args.students} students x {args.batches} batches x {args.batch_size}, + validation)"
              f"{f'; {failed} failed' if failed else ''}", flush=True)
    first = next(iter(times.values()))
    shares = [100 * t / first for t in guard_steps]
    print(f"numerics guard vs this lock-step ({first:.1f} s): step 1 {shares[0]:.2f}%, steps 2-{len(shares)} "
          f"{min(shares[1:], default=0):.2f}-{max(shares[1:], default=0):.2f}%, mean {sum(shares) / len(shares):.2f}% "
          f"(the canary, {canary_s:.1f} s once per process, runs in the background while the search starts)",
          flush=True)
    if not args.skip_isolation and device.type == "cpu":
        isolation(teacher, edited, data, args, device)
    if args.skip_naive:
        return
    naive_s = naive(teacher, students(), data, args.batches, args.batch_size, device)
    print(f"naive loop (float32): {naive_s:.1f} s, {images / naive_s:,.0f} training images/s", flush=True)
    print()
    for label, seconds in times.items():
        print(f"lock-step {label} vs naive: {naive_s / seconds:.2f}x (target on this CPU: >= 3x)")
    print(f"wall time of this script: {time.perf_counter() - wall:.0f} s; {machine_info()}")


if __name__ == "__main__":
    main()
