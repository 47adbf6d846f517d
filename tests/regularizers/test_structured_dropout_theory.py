"""Pal, Lane, Vidal & Haeffele, "On the Regularization Properties of Structured Dropout" (CVPR 2020),
checked with the library's own masks.

(A) ``E_z ||Y - U diag(z/theta) V^T X||^2 = ||Y - U V^T X||^2 + R`` by Monte Carlo, the masks coming
from ``dropout``, ``dropblock`` (a (1, k) block on a (b, 1, k) map: each group of k units is dropped
whole, with probability exactly p), ``drop_path`` (one mask for all units) and ``DropConnect`` wrapping
an ``nn.Linear`` whose weight is U or V^T. The tolerance is on R itself (stricter than on the total),
about 5 standard errors of the estimate, at fixed seeds: 1.5 % with 2e5 vectorized samples (s.e.
0.2 % for Dropout, 0.3 % for DropBlock), 2.5 % for the one-mask-for-all-units law (s.e. 0.45 %), 3.5 %
with 2e4 DropConnect calls (s.e. 0.65 %).
(B) Spectral k-support norm limits. (C) The closed-form global minimiser against L-BFGS on the
factorised objective.
"""
import pytest
import torch
from torch import nn

from autodropout.regularizers.dropblock import dropblock
from autodropout.regularizers.dropconnect import DropConnect
from autodropout.regularizers.dropout import dropout
from autodropout.regularizers.droppath import drop_path
from tests.regularizers import structured_dropout_theory as theory

P = 0.4
THETA = 1 - P
LAM = P / THETA
VECTORIZED_SAMPLES = 200_000
VECTORIZED_RTOL = 0.015
SHARED_MASK_RTOL = 0.025
DROPCONNECT_CALLS = 20_000
DROPCONNECT_RTOL = 0.035
D1, D2, R, N, BLOCK = 4, 3, 6, 5, 3


@pytest.fixture(scope="module")
def problem():
    g = torch.Generator().manual_seed(0)
    X, Y = _randn(D1, N, generator=g), _randn(D2, N, generator=g)
    U, V = _randn(D2, R, generator=g), _randn(D1, R, generator=g)
    return X, Y, U, V


def _randn(*shape, generator):
    return torch.randn(*shape, generator=generator, dtype=torch.float64)


def _mc_penalty(X, Y, U, V, scaled_masks):
    """MC estimate of R from unit masks z / theta (S, r)."""
    predictions = torch.einsum("ar,sr,rn->san", U, scaled_masks, V.T @ X)
    losses = (Y - predictions).square().sum(dim=(1, 2))
    return losses.mean() - (Y - U @ V.T @ X).square().sum()


def _assert_close(estimate, exact, rtol):
    assert abs(float(estimate) / float(exact) - 1) < rtol, (float(estimate), float(exact))


def test_dropout_identity(problem):
    X, Y, U, V = problem
    torch.manual_seed(1)
    masks = dropout(torch.ones(VECTORIZED_SAMPLES, R, dtype=torch.float64), P)
    exact = theory.dropout_penalty(U, V, X, LAM)
    _assert_close(_mc_penalty(X, Y, U, V, masks), exact, VECTORIZED_RTOL)
    assert torch.isclose(theory.mask_law_penalty(U, V, X, LAM * torch.eye(R)), exact)


def test_dropblock_identity(problem):
    X, Y, U, V = problem
    groups = R // BLOCK
    torch.manual_seed(2)
    units = torch.ones(VECTORIZED_SAMPLES, groups, 1, BLOCK, dtype=torch.float64)
    maps = dropblock(units, P, block_size=(1, BLOCK))
    kept = maps != 0
    assert torch.equal(kept.all(-1), kept.any(-1))  # each group of units is kept or dropped whole
    masks = kept.reshape(VECTORIZED_SAMPLES, R).double() / THETA
    exact = theory.dropblock_penalty(U, V, X, LAM, BLOCK)
    _assert_close(_mc_penalty(X, Y, U, V, masks), exact, VECTORIZED_RTOL)
    cov = LAM * torch.block_diag(*[torch.ones(BLOCK, BLOCK, dtype=torch.float64)] * groups)
    assert torch.isclose(theory.mask_law_penalty(U, V, X, cov), exact)


def test_any_mask_law_identity_with_one_shared_mask(problem):
    # drop_path on (S, r): all units share one draw, C = lam * 1 1^T, R = lam ||U V^T X||^2.
    X, Y, U, V = problem
    torch.manual_seed(3)
    masks = drop_path(torch.ones(VECTORIZED_SAMPLES, R, dtype=torch.float64), P)
    exact = theory.mask_law_penalty(U, V, X, LAM * torch.ones(R, R, dtype=torch.float64))
    assert torch.isclose(exact, LAM * (U @ V.T @ X).square().sum())
    _assert_close(_mc_penalty(X, Y, U, V, masks), exact, SHARED_MASK_RTOL)


def _dropconnect_mc(layer, layer_input, predict, X, Y, U, V):
    base = (Y - U @ V.T @ X).square().sum().item()
    torch.manual_seed(4)
    module = DropConnect(layer, P)
    total = 0.0
    with torch.no_grad():
        for _ in range(DROPCONNECT_CALLS):
            total += (Y - predict(module(layer_input))).square().sum().item()
    return total / DROPCONNECT_CALLS - base


def test_dropconnect_on_u_equals_dropout_for_any_x(problem):
    X, Y, U, V = problem
    layer = nn.Linear(R, D2, bias=False).double()
    layer.weight.data.copy_(U)  # F.linear(h^T, U_masked) = (U_masked V^T X)^T
    estimate = _dropconnect_mc(layer, (V.T @ X).T, lambda out: out.T, X, Y, U, V)
    _assert_close(estimate, theory.dropout_penalty(U, V, X, LAM), DROPCONNECT_RTOL)


@pytest.mark.parametrize("whitened", [True, False], ids=["X=I", "general X"])
def test_dropconnect_on_v(problem, whitened):
    X, Y, U, V = problem
    if whitened:
        X, Y = torch.eye(D1, dtype=torch.float64), Y[:, :D1]
    layer = nn.Linear(D1, R, bias=False).double()
    layer.weight.data.copy_(V.T)  # F.linear(X^T, V_masked^T) = X^T V_masked; prediction U (.)^T
    estimate = _dropconnect_mc(layer, X.T, lambda out: U @ out.T, X, Y, U, V)
    exact = theory.dropconnect_v_penalty(U, V, X, LAM)
    _assert_close(estimate, exact, DROPCONNECT_RTOL)
    dropout_value = theory.dropout_penalty(U, V, X, LAM)
    if whitened:
        assert torch.isclose(exact, dropout_value)
    else:  # equal to Dropout only for whitened data
        assert abs(float(exact / dropout_value) - 1) > 0.1


def test_k_support_norm_by_hand():
    # |w| = (3, 1, 1), k = 2: s = 0 since 3 > 1 + 1 >= 1, so ||w||^2 = 3^2 + (1 + 1)^2 = 13.
    assert theory.k_support_norm_sq(torch.tensor([1.0, -3.0, 1.0]), 2) == pytest.approx(13.0)
    # |w| = (2, 2, 2), k = 2: s = 1 (2 > 6/2 fails for s = 0), ||w||^2 = 6^2 / 2 = 18.
    assert theory.k_support_norm_sq(torch.tensor([2.0, 2.0, 2.0]), 2) == pytest.approx(18.0)


def test_spectral_k_support_limits_are_nuclear_and_frobenius():
    g = torch.Generator().manual_seed(5)
    M = _randn(6, 4, generator=g) @ _randn(4, 5, generator=g)
    rank = int(torch.linalg.matrix_rank(M))
    assert rank == 4
    nuclear = torch.linalg.matrix_norm(M, "nuc").item()
    frobenius = torch.linalg.matrix_norm(M).item()
    assert theory.spectral_k_support_norm(M, 1) == pytest.approx(nuclear, rel=1e-12)
    assert theory.spectral_k_support_norm(M, rank) == pytest.approx(frobenius, rel=1e-12)
    assert theory.spectral_k_support_norm(M, 7) == pytest.approx(frobenius, rel=1e-12)
    middle = [theory.spectral_k_support_norm(M, k) for k in range(1, rank + 1)]
    assert all(a >= b for a, b in zip(middle, middle[1:]))  # decreasing from nuclear to Frobenius


def _factorised_minimum(Y, block, blocks, lam, seed):
    """L-BFGS on ||Y - U V^T||^2 + lam sum_g ||U_g V_g^T||^2 from a random start."""
    g = torch.Generator().manual_seed(seed)
    r = block * blocks
    U = (0.5 * _randn(Y.shape[0], r, generator=g)).requires_grad_()
    V = (0.5 * _randn(Y.shape[1], r, generator=g)).requires_grad_()
    optimizer = torch.optim.LBFGS(
        [U, V], lr=1, max_iter=3000, tolerance_grad=1e-12, tolerance_change=1e-15,
        history_size=50, line_search_fn="strong_wolfe",
    )

    def objective():
        optimizer.zero_grad()
        identity = torch.eye(V.shape[0], dtype=torch.float64)
        value = (Y - U @ V.T).square().sum() + theory.dropblock_penalty(U, V, identity, lam, block)
        value.backward()
        return value

    optimizer.step(objective)
    return objective().item(), (U @ V.T).detach()


@pytest.mark.parametrize("block,blocks", [(2, 6), (1, 6)], ids=["dropblock k=2 b=6", "dropout r=6"])
def test_closed_form_minimum_matches_lbfgs(block, blocks):
    # d2 = 6, d1 = 5 (rank 5 <= b): the closed form is the global minimum; L-BFGS from two random
    # starts must reach it (relative 1e-7) and never go below it.
    Y = _randn(6, 5, generator=torch.Generator().manual_seed(1))
    M_star, closed = theory.dropblock_global_minimum(Y, block, blocks, LAM)
    runs = [_factorised_minimum(Y, block, blocks, LAM, seed) for seed in range(2)]
    best, M_best = min(runs, key=lambda run: run[0])
    assert best == pytest.approx(closed, rel=1e-7)
    assert all(value >= closed * (1 - 1e-9) for value, _ in runs)
    assert torch.allclose(M_best, M_star, atol=1e-4)
    assert (Y - M_star).square().sum().item() < closed  # the penalty is active


def test_prox_matches_a_direct_search_on_the_singular_values():
    # The prox is the exact minimiser of ||sigma - s||^2 + mu ||s||_(k)^2: no perturbation improves it.
    sigma = torch.tensor([3.0, 2.2, 1.0, 0.4, 0.1], dtype=torch.float64)
    g = torch.Generator().manual_seed(6)
    for k, mu in [(1, 0.3), (2, 0.7), (3, 1.5), (5, 0.2)]:
        s = theory.prox_squared_k_support(sigma, k, mu)

        def f(v, mu=mu, k=k):
            return (sigma - v).square().sum().item() + mu * theory.k_support_norm_sq(v, k)

        best = f(s)
        for _ in range(300):
            trial = (s + 0.05 * _randn(5, generator=g)).clamp_min(0)
            assert f(trial) >= best - 1e-12
    # k = 1 is Dropout's solution: s_i = (sigma_i - c)_+ with c = mu rho kappa / (1 + mu rho), rho the
    # number of nonzero s_i and kappa the mean of the top-rho sigma_i (lam / r = mu).
    mu = 0.3
    s = theory.prox_squared_k_support(sigma, 1, mu)
    rho = int((s > 0).sum())
    c = mu * rho * sigma[:rho].mean() / (1 + mu * rho)
    assert 0 < rho < len(sigma)
    assert torch.allclose(s, (sigma - c).clamp_min(0))
