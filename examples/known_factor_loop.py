r"""Model only what is unknown, in a plain BoTorch loop.

The reward of a student is ``f = c(x) g(x)``: a size factor ``c = C (2 - C)`` (0 above a
parameter budget), known exactly before the student is trained, times its accuracy ratio ``g``,
which is not. Here the GP models ``g`` alone, and BoTorch's ``qLogNoisyExpectedImprovement`` scores
``f`` through ``KnownFactorTransform``, a ``PosteriorTransform`` that scales each candidate's
posterior by its factor: candidates above the budget cannot improve, exactly. Everything else is
BoTorch: ``optimize_acqf_discrete`` over a pool of encoded candidates. The accuracy is a cheap
synthetic stand-in for a distillation run, so the script runs in well under a minute on a CPU.

Run: ``.venv/bin/python examples/known_factor_loop.py``
"""

from __future__ import annotations

import time

import torch
from botorch.acquisition.logei import qLogNoisyExpectedImprovement
from botorch.optim import optimize_acqf_discrete
from botorch.sampling import SobolQMCNormalSampler

from botorch_archsearch.acquisition import CompressionFactor, KnownFactorTransform, reward_factor
from botorch_archsearch.gp import architecture_gp, fit_architecture_gp
from botorch_archsearch.graph import count_flops, count_params, encode, trace
from botorch_archsearch.models import get_teacher
from botorch_archsearch.space import SearchSpace


def synthetic_accuracy_ratio(graphs, teacher_params: int, teacher_layers: int) -> torch.Tensor:
    """A made-up ``A / A_teacher`` that falls with removed depth and channels."""
    ratios = [(g.num_layers / teacher_layers) ** 0.5 * (1.0 - 0.5 * (1.0 - count_params(g) / teacher_params) ** 4)
              for g in graphs]
    return torch.tensor(ratios, dtype=torch.float64).unsqueeze(-1)


def main(iterations: int = 5, q: int = 2, pool_size: int = 300, seed: int = 0) -> None:
    torch.manual_seed(seed)
    teacher = get_teacher("resnet18", num_classes=10, in_channels=1, width=0.25)
    graph = trace(teacher, torch.randn(1, 1, 32, 32))
    space, L = SearchSpace(graph), graph.num_layers
    info = {"params": count_params(graph), "flops": count_flops(graph)}
    budget = 0.08 * info["params"]  # at most 8% of the teacher's parameters
    factor = CompressionFactor(reward_factor(info, measure="params", budget=budget))

    pool = [space.apply(e) for e in space.sample(pool_size, generator=torch.Generator().manual_seed(seed))]
    choices = encode(pool, max_layers=L, dtype=torch.float64)  # pool_size x d
    factor.add(pool, choices)  # every candidate's c(x), known before any training
    c = factor(choices)
    g_all = synthetic_accuracy_ratio(pool, info["params"], L)
    initial = list(range(8))
    train_X, train_g = choices[initial], g_all[initial]
    best = (c[initial] * train_g.squeeze(-1)).max().item()
    print(f"teacher: {L} layers, {info['params']:,} params; budget {budget:,.0f} params: "
          f"{int((c > 0).sum())} of {pool_size} candidates within it; initial best f(x) = {best:.4f}")

    for it in range(iterations):
        start = time.perf_counter()
        model = architecture_gp(train_X, train_g, max_layers=L, hidden_size=16, num_layers=1, width_init="median")
        fit = fit_architecture_gp(model, lr=1e-2, max_steps=20)
        acq = qLogNoisyExpectedImprovement(
            model, X_baseline=train_X, posterior_transform=KnownFactorTransform(factor),
            sampler=SobolQMCNormalSampler(torch.Size([32]), seed=seed + it),
        )
        candidates, _ = optimize_acqf_discrete(acq, q=q, choices=choices, X_avoid=train_X, max_batch_size=256)
        picked = [int((choices == x).all(-1).nonzero()[0]) for x in candidates]
        train_X, train_g = torch.cat([train_X, candidates]), torch.cat([train_g, g_all[picked]])
        f = factor(train_X) * train_g.squeeze(-1)
        print(f"iteration {it + 1}: fit {fit.num_steps} steps, new f(x) {f[-q:].tolist()} "
              f"(within the budget: {[bool(c[i] > 0) for i in picked]}), best {f.max().item():.4f} "
              f"({time.perf_counter() - start:.1f} s)")

    print(f"best found {f.max().item():.4f} after {len(train_g)} evaluations; best in the pool "
          f"{(c * g_all.squeeze(-1)).max().item():.4f}")


if __name__ == "__main__":
    main()
