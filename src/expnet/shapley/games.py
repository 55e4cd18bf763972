"""Shapley values of attention games: exact closed forms, brute force, and Monte Carlo.

Players are the n non-special tokens of a text; ``A`` is an n x n attention matrix over them
(Eggen et al., arXiv 2508.08966). Every game has v(empty) = 0.

- **CLS game** (additive): ``v(S) = sum_{i in S} a_i`` for the [CLS] attention row ``a``; the
  Shapley value of an additive game is the player's own term, ``phi_i = a_i``.
- **Mutual game**: ``v({i}) = A_ii`` and, for |S| >= 2, ``v(S) = sum_{i<j in S} (A_ij + A_ji)``
  (a coalition is worth the attention its members pay each other; self-attention only counts for a
  lone token). Exact values in O(n^2)::

      phi_i = A_ii / n + sum_{j != i} [ P_ij - A_jj / (n (n - 1)) ],   P_ij = (A_ij + A_ji) / 2

  Derivation: split v into the pairwise game (each pair's worth shared equally, so i gets P_ij per
  partner) and the "alone" games u_k(S) = A_kk [S = {k}]; in u_k, k gains A_kk only when joining
  the empty set (weight 1/n) and every other i loses A_kk when joining {k} (weight
  1 / (n (n - 1))). The values sum to v(N) (efficiency); for n = 1, phi_1 = A_11.
- **Max-mutual game**: the same with the pair worth ``max(A_ij, A_ji)``, so
  ``P_ij = max(A_ij, A_ji) / 2``.

For any other game, ``brute_force_shapley`` enumerates all 2^n coalitions (small n only) and
``monte_carlo_shapley`` estimates the values from sampled coalitions of a user callable ``v(S)``
(``S`` is a ``frozenset`` of player indices 0..n-1), seeded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

Game = Callable[[frozenset], float]
Pairing = Literal["mutual", "max"]

BRUTE_FORCE_MAX_PLAYERS = 20


# --- the games as callables (for brute force, Monte Carlo, and checking) ---------------------
def cls_game(row) -> Game:
    """The additive [CLS] game over an attention row ``a`` (length n): v(S) = sum_{i in S} a_i."""
    row = np.asarray(row, dtype=np.float64)

    def v(coalition: Iterable[int]) -> float:
        return float(sum(row[i] for i in coalition))

    return v


def _pair_game(matrix, worth: Callable[[float, float], float]) -> Game:
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"attention game needs a square n x n matrix, got shape {matrix.shape}")

    def v(coalition: Iterable[int]) -> float:
        members = sorted(set(coalition))
        if not members:
            return 0.0
        if len(members) == 1:
            return float(matrix[members[0], members[0]])
        total = 0.0
        for a, i in enumerate(members):
            for j in members[a + 1 :]:
                total += worth(matrix[i, j], matrix[j, i])
        return float(total)

    return v


def mutual_game(matrix) -> Game:
    """v({i}) = A_ii; v(S) = sum over pairs i<j in S of A_ij + A_ji for |S| >= 2."""
    return _pair_game(matrix, lambda a, b: a + b)


def max_mutual_game(matrix) -> Game:
    """v({i}) = A_ii; v(S) = sum over pairs i<j in S of max(A_ij, A_ji) for |S| >= 2."""
    return _pair_game(matrix, max)


# --- exact closed forms ----------------------------------------------------------------------
def pairwise_shapley(matrix: torch.Tensor, players: torch.Tensor | None = None, pairing: Pairing = "mutual") -> torch.Tensor:
    """Exact Shapley values of the mutual or max-mutual game, batched, in O(n^2).

    ``matrix`` is [..., T, T]; ``players`` [..., T] (bool) marks the tokens that play (the others,
    e.g. [CLS], [SEP] and padding, are left out of the game and get 0). Returns [..., T].
    """
    if matrix.shape[-1] != matrix.shape[-2]:
        raise ValueError(f"attention game needs square matrices, got shape {tuple(matrix.shape)}")
    if players is None:
        players = torch.ones(matrix.shape[:-1], dtype=torch.bool, device=matrix.device)
    m = players.to(matrix.dtype)
    diag = torch.diagonal(matrix, dim1=-2, dim2=-1) * m
    transposed = matrix.transpose(-1, -2)
    if pairing == "mutual":
        share = (matrix + transposed) / 2
    elif pairing == "max":
        # max(a, b) = (a + b + |a - b|) / 2, which stays fast on a transposed (strided) view.
        share = (matrix + transposed + (matrix - transposed).abs()) / 4
    else:
        raise ValueError(f"unknown pairing {pairing!r}: use 'mutual' or 'max'")
    # Sum of each player's pair shares with the other players (its own diagonal taken out).
    pair_share = (share @ m.unsqueeze(-1)).squeeze(-1) - torch.diagonal(share, dim1=-2, dim2=-1) * m
    n = m.sum(-1, keepdim=True)
    others_diag = diag.sum(-1, keepdim=True) - diag
    # n = 1: the pair terms are empty and others_diag is 0, so phi = A_ii; the clamps avoid 0/0.
    phi = diag / n.clamp(min=1) + pair_share - others_diag / (n * (n - 1)).clamp(min=1)
    return phi * m


def mutual_shapley(matrix) -> np.ndarray:
    """Exact Shapley values of the mutual game on one n x n matrix (every index plays)."""
    return pairwise_shapley(torch.as_tensor(np.asarray(matrix, dtype=np.float64)), pairing="mutual").numpy()


def max_mutual_shapley(matrix) -> np.ndarray:
    """Exact Shapley values of the max-mutual game on one n x n matrix (every index plays)."""
    return pairwise_shapley(torch.as_tensor(np.asarray(matrix, dtype=np.float64)), pairing="max").numpy()


def cls_shapley(row) -> np.ndarray:
    """Exact Shapley values of the additive [CLS] game: the row itself."""
    return np.asarray(row, dtype=np.float64).copy()


# --- any game: brute force and Monte Carlo --------------------------------------------------
def _members(mask: int, n: int) -> frozenset:
    return frozenset(i for i in range(n) if mask >> i & 1)


def brute_force_shapley(v: Game, n: int) -> np.ndarray:
    """Exact Shapley values by enumerating all 2^n coalitions (v is called 2^n times)."""
    if not 0 < n <= BRUTE_FORCE_MAX_PLAYERS:
        raise ValueError(f"brute force needs 1..{BRUTE_FORCE_MAX_PLAYERS} players, got {n}; use monte_carlo_shapley")
    worth = np.array([float(v(_members(mask, n))) for mask in range(1 << n)])
    sizes = np.array([mask.bit_count() for mask in range(1 << n)])
    weight = np.array([math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)])
    masks = np.arange(1 << n)
    phi = np.zeros(n)
    for i in range(n):
        without = masks[(masks >> i & 1) == 0]
        phi[i] = float(np.sum(weight[sizes[without]] * (worth[without | (1 << i)] - worth[without])))
    return phi


@dataclass
class MonteCarloEstimate:
    """Estimated Shapley values, their standard errors, and what the estimate cost."""

    values: np.ndarray
    std_errors: np.ndarray
    n_samples: int
    n_evaluations: int  # distinct calls of v (repeated coalitions are cached)
    method: str


def monte_carlo_shapley(
    v: Game,
    n: int,
    n_samples: int = 200,
    seed: int = 0,
    method: Literal["permutations", "coalitions"] = "permutations",
) -> MonteCarloEstimate:
    """Unbiased Monte-Carlo Shapley values of any game ``v`` over players 0..n-1, seeded.

    ``permutations`` (default): ``n_samples`` random player orders; each order is a chain of
    n + 1 nested coalitions and gives every player one marginal contribution, so the estimates
    sum exactly to v(N) - v(empty) (Castro et al. 2009).
    ``coalitions``: for each player, ``n_samples`` coalitions of the others, drawn with a uniform
    size 0..n-1 and then uniformly among the subsets of that size (the Shapley weights exactly),
    each giving the marginal contribution v(S + i) - v(S).
    ``v`` receives a ``frozenset`` of player indices; its results are cached per coalition.
    """
    if n <= 0:
        raise ValueError(f"a game needs at least one player, got n={n}")
    if n_samples <= 0:
        raise ValueError(f"n_samples must be positive, got {n_samples}")
    rng = np.random.default_rng(seed)
    cache: dict[frozenset, float] = {}

    def worth(coalition: frozenset) -> float:
        if coalition not in cache:
            cache[coalition] = float(v(coalition))
        return cache[coalition]

    marginals = np.zeros((n_samples, n))
    if method == "permutations":
        for s in range(n_samples):
            coalition: frozenset = frozenset()
            previous = worth(coalition)
            for player in rng.permutation(n):
                coalition = coalition | {int(player)}
                current = worth(coalition)
                marginals[s, player] = current - previous
                previous = current
    elif method == "coalitions":
        for i in range(n):
            others = np.array([j for j in range(n) if j != i], dtype=np.int64)
            for s in range(n_samples):
                size = int(rng.integers(0, n))  # 0..n-1, uniform
                chosen = frozenset(int(j) for j in rng.choice(others, size=size, replace=False))
                marginals[s, i] = worth(chosen | {i}) - worth(chosen)
    else:
        raise ValueError(f"unknown method {method!r}: use 'permutations' or 'coalitions'")
    values = marginals.mean(0)
    std_errors = marginals.std(0, ddof=1) / math.sqrt(n_samples) if n_samples > 1 else np.full(n, np.nan)
    return MonteCarloEstimate(values, std_errors, n_samples, len(cache), method)
