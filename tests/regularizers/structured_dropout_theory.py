"""Closed forms from Pal, Lane, Vidal & Haeffele, "On the Regularization Properties of Structured
Dropout" (CVPR 2020, arXiv 1910.14186), for a single-hidden-layer linear network: the oracle
``test_structured_dropout_theory.py`` checks the library's masks against.

Setup: data ``X`` (d1, n), targets ``Y`` (d2, n), weights ``U`` (d2, r) and ``V`` (d1, r), a unit
mask ``z`` in {0, 1}^r with keep probability ``theta``, prediction ``U diag(z / theta) V^T X`` and
``lam = (1 - theta) / theta``. Then
``E ||Y - U diag(z/theta) V^T X||_F^2 = ||Y - U V^T X||_F^2 + R`` with ``R`` given below.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def mask_law_penalty(U: Tensor, V: Tensor, X: Tensor, cov: Tensor) -> Tensor:
    """``R = sum_ij C_ij <u_i, u_j> <X^T v_i, X^T v_j>`` for any mask law with ``E z = theta`` and
    ``C = Cov(z / theta)`` (r, r)."""
    hidden = V.T @ X
    return (cov * (U.T @ U) * (hidden @ hidden.T)).sum()


def dropout_penalty(U: Tensor, V: Tensor, X: Tensor, lam: float) -> Tensor:
    """Dropout (iid z_i), and DropConnect on U: ``lam * sum_i ||u_i||^2 ||X^T v_i||^2``."""
    return lam * (U.square().sum(0) * (V.T @ X).square().sum(1)).sum()


def dropblock_penalty(U: Tensor, V: Tensor, X: Tensor, lam: float, block: int) -> Tensor:
    """DropBlock with non-overlapping groups of ``block`` consecutive units:
    ``lam * sum_g ||U_g V_g^T X||_F^2``."""
    r = U.shape[1]
    if r % block:
        raise ValueError(f"block must divide the number of units r={r}, got {block}")
    return lam * sum(
        (U[:, g : g + block] @ V[:, g : g + block].T @ X).square().sum() for g in range(0, r, block)
    )


def dropconnect_v_penalty(U: Tensor, V: Tensor, X: Tensor, lam: float) -> Tensor:
    """DropConnect on V (iid entry masks): ``lam * sum_i ||u_i||^2 sum_j V_ji^2 ||X_j,:||^2``."""
    return lam * (U.square().sum(0) * (V.square().T @ X.square().sum(1))).sum()


def _sorted_padded(values: Tensor, length: int) -> Tensor:
    values = values.abs().sort(descending=True).values
    return torch.cat([values, values.new_zeros(max(0, length - len(values)))])


def k_support_norm_sq(w: Tensor, k: int) -> float:
    """Squared vector k-support norm (Argyriou, Foygel & Srebro, NeurIPS 2012):
    ``sum_{i <= k-s-1} |w|_i^2 + (sum_{i >= k-s} |w|_i)^2 / (s + 1)`` over the decreasingly sorted
    ``|w|`` (1-indexed), with the unique ``s`` in 0..k-1 such that
    ``|w|_{k-s-1} > (sum_{i >= k-s} |w|_i) / (s + 1) >= |w|_{k-s}`` (``|w|_0 = inf``)."""
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    a = _sorted_padded(w, k).tolist()
    for s in range(k):
        head = k - s - 1  # number of entries kept as squares
        tail = math.fsum(a[head:])
        left = math.inf if head == 0 else a[head - 1]
        if left > tail / (s + 1) >= a[head]:
            return math.fsum(v * v for v in a[:head]) + tail * tail / (s + 1)
    raise ArithmeticError(f"no valid s found for k={k}; values {a}")


def spectral_k_support_norm(M: Tensor, k: int) -> float:
    """Spectral k-support norm: the vector k-support norm of the singular values of ``M``.
    ``k = 1`` is the nuclear norm, ``k >= rank`` the Frobenius norm."""
    return math.sqrt(k_support_norm_sq(torch.linalg.svdvals(M), k))


def prox_squared_k_support(sigma: Tensor, k: int, mu: float) -> Tensor:
    """``argmin_s ||sigma - s||^2 + mu ||s||_(k)^2`` for nonnegative ``sigma`` (returned in
    decreasing order), by Argyriou et al. 2012, Algorithm 1, with ``beta = 1 / mu``: find
    ``r' in 0..k-1`` and ``l in k..d`` with ``c = T / (l - k + (beta+1) r' + beta + 1)``,
    ``T = sum_{i=k-r'}^{l} sigma_i``, such that
    ``sigma_{k-r'-1} / (beta+1) > c >= sigma_{k-r'} / (beta+1)`` and ``sigma_l > c >= sigma_{l+1}``;
    then ``s_i = sigma_i / (1 + mu)`` for ``i < k-r'``, ``sigma_i - c`` up to ``l``, 0 after."""
    if mu <= 0:
        raise ValueError(f"mu must be positive, got {mu}")
    count = len(sigma)
    a = _sorted_padded(sigma, k)
    values = a.tolist()
    d, beta = len(values), 1.0 / mu

    def at(i: int) -> float:  # 1-indexed, sigma_0 = inf, sigma_{d+1} = -inf
        return math.inf if i <= 0 else -math.inf if i > d else values[i - 1]

    for r in range(k):
        for last in range(k, d + 1):
            c = math.fsum(values[k - r - 1 : last]) / (last - k + (beta + 1) * r + beta + 1)
            head_ok = at(k - r - 1) / (beta + 1) > c >= at(k - r) / (beta + 1)
            if head_ok and at(last) > c >= at(last + 1):
                s = a.clone()
                s[: k - r - 1] = a[: k - r - 1] / (1 + mu)
                s[k - r - 1 : last] = a[k - r - 1 : last] - c
                s[last:] = 0
                return s[:count]
    raise ArithmeticError(f"no (r', l) satisfies the optimality conditions for k={k}, mu={mu}")


def dropblock_global_minimum(
    Y: Tensor, block: int, blocks: int, lam: float
) -> tuple[Tensor, float]:
    """Closed-form minimiser ``M*`` and minimum of ``min_{U, V} ||Y - U V^T||_F^2 + lam sum_g
    ||U_g V_g^T||_F^2`` (X = I, ``blocks`` groups of ``block`` units, ``r = block * blocks``):
    ``M* = U_Y diag(s*) V_Y^T`` with ``s* = prox(sigma(Y))`` at ``mu = lam * block / r``. Valid when
    there are enough groups (``blocks >= rank(M*)``). ``block = 1`` is Dropout."""
    mu = lam / blocks
    left, sigma, right_t = torch.linalg.svd(Y, full_matrices=False)
    s = prox_squared_k_support(sigma, block, mu)
    value = (sigma - s).square().sum().item() + mu * k_support_norm_sq(s, block)
    return left @ torch.diag(s) @ right_t, value
