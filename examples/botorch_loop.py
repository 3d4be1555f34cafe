r"""The learned architecture kernel in a plain BoTorch loop.

Bayesian optimization over compressed students of a small ResNet-18, with everything but the
kernel taken from BoTorch: ``SingleTaskGP`` with ``ArchitectureKernel`` as its ``covar_module``,
``qLogNoisyExpectedImprovement``, and ``optimize_acqf_discrete`` over a pool of encoded
candidates. The objective is a cheap synthetic stand-in for a distillation run (the N2N reward
of paper appendix 6.1 with a made-up accuracy that falls with removed depth and channels), so the
script runs in well under a minute on a CPU.

Run: ``.venv/bin/python examples/botorch_loop.py``
"""

from __future__ import annotations

import time

import torch
from botorch.acquisition.logei import qLogNoisyExpectedImprovement
from botorch.optim import optimize_acqf_discrete
from botorch.sampling import SobolQMCNormalSampler

from botorch_archsearch.gp import architecture_gp, fit_architecture_gp
from botorch_archsearch.graph import count_params, encode, trace
from botorch_archsearch.models import get_teacher
from botorch_archsearch.space import SearchSpace


def synthetic_reward(graphs, teacher_params: int, teacher_layers: int) -> torch.Tensor:
    """N2N reward C(2 - C) * A / A_teacher with a made-up relative accuracy."""
    rewards = []
    for g in graphs:
        c = 1.0 - count_params(g) / teacher_params
        accuracy = (g.num_layers / teacher_layers) ** 0.5 * (1.0 - 0.5 * c**4)
        rewards.append(c * (2.0 - c) * accuracy)
    return torch.tensor(rewards, dtype=torch.float64).unsqueeze(-1)


def main(iterations: int = 5, q: int = 2, pool_size: int = 300, seed: int = 0) -> None:
    torch.manual_seed(seed)
    teacher = get_teacher("resnet18", num_classes=10, in_channels=1, width=0.25)
    graph = trace(teacher, torch.randn(1, 1, 32, 32))
    space = SearchSpace(graph)
    L = graph.num_layers
    t_params = count_params(graph)
    generator = torch.Generator().manual_seed(seed)

    pool = [space.apply(e) for e in space.sample(pool_size, generator=generator)]
    choices = encode(pool, max_layers=L, dtype=torch.float64)  # pool_size x d
    initial = list(range(8))
    train_X, train_Y = choices[initial], synthetic_reward([pool[i] for i in initial], t_params, L)
    print(f"teacher: {L} layers, {t_params:,} params; pool of {pool_size} candidates; "
          f"initial best f(x) = {train_Y.max().item():.4f}")

    for it in range(iterations):
        start = time.perf_counter()
        # A small LSTM and a short fit keep the example quick; the paper's is hidden 64, 4 layers.
        model = architecture_gp(train_X, train_Y, max_layers=L, hidden_size=16, num_layers=1)
        fit = fit_architecture_gp(model, lr=1e-2, max_steps=20)
        acq = qLogNoisyExpectedImprovement(
            model, X_baseline=train_X, sampler=SobolQMCNormalSampler(torch.Size([32]), seed=seed + it)
        )
        candidates, _ = optimize_acqf_discrete(acq, q=q, choices=choices, X_avoid=train_X, max_batch_size=256)
        picked = [int((choices == c).all(-1).nonzero()[0]) for c in candidates]
        new_Y = synthetic_reward([pool[i] for i in picked], t_params, L)
        train_X, train_Y = torch.cat([train_X, candidates]), torch.cat([train_Y, new_Y])
        print(f"iteration {it + 1}: fit {fit.num_steps} steps, new f(x) {new_Y.squeeze(-1).tolist()}, "
              f"best {train_Y.max().item():.4f} ({time.perf_counter() - start:.1f} s)")

    pool_best = synthetic_reward(pool, t_params, L).max().item()
    print(f"best found {train_Y.max().item():.4f} after {len(train_Y)} evaluations; best in the pool {pool_best:.4f}")


if __name__ == "__main__":
    main()
