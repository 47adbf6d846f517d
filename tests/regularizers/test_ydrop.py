"""Y-Drop (arXiv 2409.09088): conductance against captum, bucket rates, EMA rescaling, warm-up,
and the prepare_step protocol."""
from __future__ import annotations

import io
import os

import pytest
import torch
from captum.attr import LayerConductance
from torch import nn

import autodropout as ad
from autodropout.regularizers._conductance import ConductanceEstimator, true_label_logit
from autodropout.regularizers.training_step import prepare_step
from autodropout.regularizers.ydrop import YDrop, bucket_keep_probs

DEVICE = torch.device(os.environ.get("AUTODROPOUT_TEST_DEVICE", "cpu"))


def mlp() -> nn.Sequential:
    """The reference placement: Linear -> Y-Drop -> ReLU. The second site feeds a Linear directly,
    so the output is affine in it and completeness holds exactly there."""
    return nn.Sequential(
        nn.Linear(6, 8), YDrop(), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(8, 5), YDrop(), nn.Linear(5, 3),
    ).double().to(DEVICE)


def convnet() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), YDrop(), nn.ReLU(inplace=True),
        nn.Conv2d(4, 3, 3), YDrop(), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 3),
    ).double().to(DEVICE)


class TinyLM(nn.Module):
    """(B, T) token ids -> (B, T, V) logits with one (B, T, N) Y-Drop site."""

    def __init__(self, vocab: int = 11) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 6)
        self.tail = nn.Sequential(nn.Linear(6, 8), YDrop(), nn.Tanh(), nn.Linear(8, vocab))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.tail(self.embed(tokens))


def sites(model: nn.Module) -> list[YDrop]:
    return [m for m in model.modules() if isinstance(m, YDrop)]


def captum_conductance(model, layer, x, y, n_steps):
    model.eval()
    return LayerConductance(model, layer).attribute(
        x, baselines=torch.zeros_like(x), target=y, n_steps=n_steps, method="riemann_trapezoid"
    )


# --- conductance ------------------------------------------------------------------------------


@pytest.mark.parametrize("build, shape", [(mlp, (5, 6)), (convnet, (5, 2, 6, 6))])
def test_conductance_equals_captum_for_all_sites_at_once(build, shape):
    torch.manual_seed(0)
    model = build()
    x = torch.randn(*shape, dtype=torch.float64, device=DEVICE)
    y = torch.tensor([0, 1, 2, 1, 0], device=DEVICE)
    model.train()
    ours = ConductanceEstimator(model, n_steps=5).conductance(x, y)
    assert len(ours) == 2
    for name, site in zip(ours, sites(model)):
        expected = captum_conductance(model, site, x, y, n_steps=5)
        # float64 throughout: the two compute the same sums, so they agree to rounding.
        torch.testing.assert_close(ours[name], expected, rtol=1e-10, atol=1e-12)


def test_conductance_through_embedding_for_token_inputs_equals_captum():
    torch.manual_seed(0)
    model = TinyLM().double().to(DEVICE)
    tokens = torch.randint(0, 11, (3, 4), device=DEVICE)
    targets = torch.randint(0, 11, (3, 4), device=DEVICE)
    targets[0, 2] = -100  # ignored position
    ours = ConductanceEstimator(model, n_steps=4, input_module=model.embed).conductance(tokens, targets)

    def f_of_embedding(e, tg):  # F = sum over T of the true-token logits, skipping ignored targets
        return true_label_logit(model.tail(e), tg)

    model.eval()
    expected = LayerConductance(f_of_embedding, model.tail[1]).attribute(
        model.embed(tokens), baselines=0.0, additional_forward_args=(targets,), n_steps=4,
        method="riemann_trapezoid",
    )
    assert ours["tail.1"].shape == (3, 4, 8)
    torch.testing.assert_close(ours["tail.1"], expected, rtol=1e-10, atol=1e-12)


def test_token_inputs_without_input_module_are_an_error():
    model = TinyLM()
    with pytest.raises(TypeError, match="input_module"):
        ConductanceEstimator(model).conductance(torch.zeros(2, 3, dtype=torch.long),
                                                torch.zeros(2, 3, dtype=torch.long))


def test_completeness_sum_of_conductances_is_output_difference():
    torch.manual_seed(1)
    model = mlp()
    x = torch.randn(4, 6, dtype=torch.float64, device=DEVICE)
    y = torch.tensor([0, 1, 2, 1], device=DEVICE)
    model.eval()
    delta = true_label_logit(model(x), y) - true_label_logit(model(torch.zeros_like(x)), y)
    exact = ConductanceEstimator(model, n_steps=5).conductance(x, y)["5"]
    # The output is affine in the second site's activation: the Riemann sum is exact.
    torch.testing.assert_close(exact.sum(1), delta, rtol=1e-10, atol=1e-12)
    fine = ConductanceEstimator(model, n_steps=500).conductance(x, y)["1"]
    # ReLUs downstream of the first site: the left Riemann sum converges as O(1/n_steps);
    # measured 8e-4 relative at 500 steps, asserted at 5e-3.
    assert (fine.sum(1) - delta).abs().max() <= 5e-3 * delta.abs().max()


def test_estimator_restores_modes_and_leaves_parameter_grads_alone():
    model = convnet()
    model.train()
    model[1].eval()  # a frozen BatchNorm must stay frozen
    x = torch.randn(3, 2, 6, 6, dtype=torch.float64, device=DEVICE)
    ConductanceEstimator(model, subsample=1.0).update(x, torch.tensor([0, 1, 2], device=DEVICE))
    assert [m.training for m in model] == [True, False] + [True] * 8
    assert all(p.grad is None for p in model.parameters())


def test_update_scores_are_mean_conductance_per_unit_and_subsample_rows():
    torch.manual_seed(2)
    model = convnet()
    x = torch.randn(64, 2, 6, 6, dtype=torch.float64, device=DEVICE)
    y = torch.randint(0, 3, (64,), device=DEVICE)
    estimator = ConductanceEstimator(model, n_steps=5, subsample=1.0)
    cond = estimator.conductance(x, y)
    scores = estimator.update(x, y)
    for (name, site), dims in zip(zip(scores, sites(model)), [(0, 2, 3), (0, 2, 3)]):
        torch.testing.assert_close(scores[name], cond[name].mean(dims).float())
        assert site.scores is not None and torch.equal(site.scores, scores[name])

    rows_seen = []
    handle = model[0].register_forward_hook(lambda m, a, o: rows_seen.append(a[0].shape[0]))
    ConductanceEstimator(model, n_steps=5).update(x, y)  # reference: 18.75 % of 64 = 12 samples
    handle.remove()
    assert rows_seen == [(5 + 1) * 12]


def test_estimator_errors_name_the_problem():
    model = mlp()
    with pytest.raises(ValueError, match="no YDrop"):
        ConductanceEstimator(nn.Linear(2, 2))
    with pytest.raises(TypeError, match=r"modules\[0\].*expected YDrop"):
        ConductanceEstimator(model, modules=[model[0]])
    with pytest.raises(ValueError, match="not a submodule"):
        ConductanceEstimator(model, modules=[YDrop()])
    with pytest.raises(ValueError, match="subsample"):
        ConductanceEstimator(model, subsample=0.0)
    with pytest.raises(ValueError, match="n_steps"):
        ConductanceEstimator(model, n_steps=0)
    x = torch.randn(2, 6, dtype=torch.float64, device=DEVICE)
    y = torch.tensor([0, 1], device=DEVICE)
    with pytest.raises(ValueError, match="target_fn returned shape"):
        ConductanceEstimator(model, target_fn=lambda out, t: out).conductance(x, y)
    with pytest.raises(ValueError, match="targets has batch size 3"):
        ConductanceEstimator(model).conductance(x, torch.tensor([0, 1, 2], device=DEVICE))
    shared = YDrop()
    twice = nn.Sequential(nn.Linear(6, 6), shared, nn.Linear(6, 6), shared, nn.Linear(6, 3))
    with pytest.raises(RuntimeError, match="ran twice"):
        ConductanceEstimator(twice.double().to(DEVICE)).conductance(x, y)
    assert all(not m._forward_hooks for m in twice.modules())  # hooks removed after the error


# --- the module -------------------------------------------------------------------------------


def test_bucket_mapping_by_hand():
    scores = torch.tensor([0.3, -1.0, 2.0, 0.5, 0.1])
    # sorted: idx1 < idx4 < idx0 < idx3 < idx2; floor(5/2) = 2 lowest -> p_low, 3 highest -> p_high
    torch.testing.assert_close(bucket_keep_probs(scores, 0.2, 0.6), torch.tensor([0.4, 0.8, 0.4, 0.4, 0.8]))
    torch.testing.assert_close(bucket_keep_probs(scores, 0.2, 0.6, drop_low=True),
                               torch.tensor([0.4, 0.4, 0.8, 0.8, 0.4]))
    # ties keep index order (stable sort)
    torch.testing.assert_close(bucket_keep_probs(torch.ones(4), 0.2, 0.6), torch.tensor([0.8, 0.8, 0.4, 0.4]))


@pytest.mark.parametrize("shape, unit_dim", [((20000, 6), 1), ((2000, 10, 6), 2), ((500, 6, 4, 10), 1)])
@pytest.mark.parametrize("drop_low", [False, True])
def test_measured_drop_rates_follow_the_buckets(shape, unit_dim, drop_low):
    torch.manual_seed(3)
    module = YDrop(p_low=0.2, p_high=0.6, drop_low=drop_low).to(DEVICE)
    scores = torch.tensor([5.0, -1.0, 3.0, 0.0, 9.0, 1.0])  # high half: units 0, 2, 4
    module.set_scores(scores)
    out = module(torch.ones(shape, device=DEVICE))
    high = torch.tensor([True, False, True, False, True, False]) ^ drop_low
    expected_rate = torch.where(high, 0.6, 0.2)
    dims = [d for d in range(len(shape)) if d != unit_dim]
    zero_fraction = (out == 0).double().mean(dims).cpu()
    # 20000 draws per unit: binomial std <= 0.0035, tolerance ~6 sigma
    torch.testing.assert_close(zero_fraction, expected_rate.double(), rtol=0, atol=0.02)
    # the first post-warm-up step rescales by 1 / keep exactly
    kept = out.movedim(unit_dim, -1).reshape(-1, 6)
    for unit in range(6):
        values = kept[:, unit].unique().cpu()
        torch.testing.assert_close(values, torch.tensor([0.0, 1 / (1 - expected_rate[unit].item())]))


def test_ema_update_rule_and_kept_scale():
    module = YDrop(p_low=0.25, p_high=0.75, ema_alpha=0.1)
    x = torch.ones(1000, 2)
    module.set_scores(torch.tensor([0.0, 1.0]))  # unit 1 high: keep 0.25
    out = module(x)
    torch.testing.assert_close(module.keep_ema, torch.tensor([0.75, 0.25]))
    module.set_scores(torch.tensor([1.0, 0.0]))  # units swap buckets
    out = module(x)
    expected = torch.tensor([0.9 * 0.75 + 0.1 * 0.25, 0.9 * 0.25 + 0.1 * 0.75])
    torch.testing.assert_close(module.keep_ema, expected)
    torch.testing.assert_close(out.max(0).values, 1 / expected)


def test_ema_rescaling_keeps_outputs_unbiased_after_warmup_while_units_switch_buckets():
    torch.manual_seed(4)
    module = YDrop(ema_alpha=0.02, warmup_steps=5).to(DEVICE)
    x = torch.ones(64, 8, device=DEVICE)
    for _ in range(5):
        module(x)
    assert module.keep_ema is None  # warm-up leaves the running average alone
    bias = torch.linspace(-1.0, 1.0, 8)  # unit k is in the high bucket more often the larger k
    total = torch.zeros(8, device=DEVICE)
    high_count = torch.zeros(8)
    steps = 3000
    for _ in range(steps):
        scores = bias + torch.randn(8)
        module.set_scores(scores)
        high_count += bucket_keep_probs(scores, 0.25, 0.75) == 0.25
        total += module(x).mean(0)
    assert high_count[0] < 0.3 * steps and high_count[-1] > 0.7 * steps  # the buckets are uneven
    # 192k draws per unit, per-draw std ~1: sampling std ~0.003; tolerance 0.02.
    torch.testing.assert_close((total / steps).cpu(), torch.ones(8), rtol=0, atol=0.02)


def test_warmup_is_plain_dropout_and_then_scores_are_required():
    torch.manual_seed(5)
    module = YDrop(p=0.5, warmup_steps=3, warmup_p=0.3).to(DEVICE)
    x = torch.ones(4000, 5, device=DEVICE)
    for step in range(3):
        module.eval()
        assert module(x) is x  # eval calls do not count towards warm-up
        module.train()
        out = module(x)
        assert module.step_count == step + 1 and not (module.needs_scores and step < 2)
        torch.testing.assert_close(out.unique().cpu(), torch.tensor([0.0, 1 / 0.7]))
        # 20000 draws: binomial std 0.0032, tolerance ~5 sigma
        assert abs((out == 0).double().mean().item() - 0.3) < 0.016
    assert module.needs_scores
    with pytest.raises(RuntimeError, match="prepare_step"):
        module(x)


def test_identity_in_eval_and_at_rate_zero():
    x = torch.randn(3, 4, device=DEVICE)
    module = YDrop()
    module.eval()
    assert module(x) is x
    zero = YDrop(p=0.0).train()
    assert zero(x) is x and not zero.needs_scores


def test_sigma_drop_quirk_resamples_rates_around_the_reference_thresholds():
    torch.manual_seed(6)
    module = YDrop(sigma_drop=(0.05, 0.05)).to(DEVICE)
    module.set_scores(torch.tensor([0.0, 0.0, 1.0, 1.0]))
    x = torch.ones(2000, 4, device=DEVICE)
    zeros = torch.stack([(module(x) == 0).double().mean(0) for _ in range(200)]).cpu()
    half_normal_mean = 0.05 * (2 / torch.pi) ** 0.5
    # E[min(0.1 + |N(0, .05)|, .5)] = 0.1399 and 0.6399; the per-step rate varies (std ~0.03),
    # averaged over 200 steps: std ~0.002; tolerance 0.01.
    torch.testing.assert_close(zeros[:, :2].mean(), torch.tensor(0.1 + half_normal_mean, dtype=torch.float64),
                               rtol=0, atol=0.01)
    torch.testing.assert_close(zeros[:, 2:].mean(), torch.tensor(0.6 + half_normal_mean, dtype=torch.float64),
                               rtol=0, atol=0.01)
    assert zeros[:, 0].std() > 0.01  # resampled each step
    capped = YDrop(sigma_drop=1e6)
    capped.set_scores(torch.tensor([0.0, 1.0]))
    rates = torch.stack([(capped(torch.ones(4000, 2)) == 0).double().mean(0) for _ in range(20)]).mean(0)
    torch.testing.assert_close(rates, torch.tensor([0.5, 0.9], dtype=torch.float64), rtol=0, atol=0.01)


def test_bfloat16_seeded_determinism_and_gradients():
    module = YDrop(p_low=0.25, p_high=0.75).to(DEVICE).to(torch.bfloat16)
    module.set_scores(torch.arange(6.0))
    x = torch.randn(8, 5, 6, device=DEVICE, dtype=torch.bfloat16, requires_grad=True)
    torch.manual_seed(7)
    out = module(x)
    assert out.dtype == torch.bfloat16 and out.device == x.device
    assert module.keep_ema.dtype == torch.float32  # a bfloat16 average would not move at alpha=1e-3
    out.float().sum().backward()
    # d out / d x is the mask times the scale: 0 or 1/keep per unit
    torch.testing.assert_close(x.grad.float(), (out / x).detach().float().nan_to_num(), rtol=0.02, atol=0.0)
    again = YDrop(p_low=0.25, p_high=0.75).to(DEVICE)
    again.set_scores(torch.arange(6.0))
    first = YDrop(p_low=0.25, p_high=0.75).to(DEVICE)
    first.set_scores(torch.arange(6.0))
    y = torch.randn(8, 6, device=DEVICE)
    torch.manual_seed(8)
    a = first(y)
    torch.manual_seed(8)
    assert torch.equal(a, again(y))


def test_state_dict_carries_steps_scores_and_running_average():
    torch.manual_seed(9)
    module = YDrop(ema_alpha=0.1, warmup_steps=1)
    x = torch.ones(16, 4)
    module(x)
    module.set_scores(torch.tensor([3.0, 1.0, 2.0, 0.0]))
    module(x)
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    buffer.seek(0)
    restored = YDrop(ema_alpha=0.1, warmup_steps=1)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.step_count == 2
    assert torch.equal(restored.scores, module.scores) and torch.equal(restored.keep_ema, module.keep_ema)
    torch.manual_seed(10)
    expected = module(x)
    torch.manual_seed(10)
    assert torch.equal(restored(x), expected)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"p": 1.0}, r"p must be a drop probability in \[0, 1\)"),
        ({"p_low": 0.2}, "both p_low and p_high"),
        ({"p_low": 0.6, "p_high": 0.2}, "p_low=0.6 must not exceed p_high=0.2"),
        ({"p": 0.5, "p_low": 0.1, "p_high": 0.3}, r"p=0.5 must equal \(p_low \+ p_high\) / 2"),
        ({"p_low": 0.1, "p_high": 0.3, "sigma_drop": 0.05}, "sigma_drop"),
        ({"sigma_drop": (0.05,)}, "sigma_drop must be"),
        ({"ema_alpha": 0.0}, "ema_alpha"),
        ({"warmup_steps": -1}, "warmup_steps"),
        ({"warmup_p": 1.5}, "warmup_p"),
    ],
)
def test_bad_parameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        YDrop(**kwargs)


def test_bad_scores_and_inputs_are_named():
    module = YDrop()
    with pytest.raises(ValueError, match="1-D floating"):
        module.set_scores(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="NaN"):
        module.set_scores(torch.tensor([0.0, float("nan")]))
    module.set_scores(torch.zeros(3))
    with pytest.raises(ValueError, match="scores have 3 entries but the input"):
        module(torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"\(B, N\), \(B, T, N\) or \(B, C, H, W\)"):
        module(torch.ones(2, 3, 1, 1, 1))


def test_registry_entry():
    info = ad.regularizers.info("ydrop")
    assert info.rate_param == "p" and info.identity_params == {"p": 0.0}
    module = ad.regularizers.create("ydrop", **info.example_params)
    assert isinstance(module, YDrop) and module.warmup_p == module.p == 0.5
    assert "p_low=0.25, p_high=0.75" in repr(module)


# --- prepare_step -----------------------------------------------------------------------------


class ProgressRecorder(nn.Identity):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[float] = []

    def set_progress(self, progress: float) -> None:
        self.seen.append(progress)


def small_model(warmup_steps: int = 0) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(6, 8), YDrop(warmup_steps=warmup_steps), nn.ReLU(), nn.BatchNorm1d(8),
        nn.Linear(8, 3), ProgressRecorder(),
    ).to(DEVICE)


def test_prepare_step_sets_progress_and_scores_like_the_estimator():
    model = small_model(warmup_steps=2)
    model.train()
    model[3].eval()
    x, y = torch.randn(32, 6, device=DEVICE), torch.randint(0, 3, (32,), device=DEVICE)
    for step in range(2):  # warm-up: no estimator
        assert prepare_step(model, x, y, progress=step / 10) == {}
        model(x)
    assert model[1].scores is None and model[5].seen == [0.0, 0.1]
    torch.manual_seed(11)
    scores = prepare_step(model, x, y, progress=0.2)
    assert list(scores) == ["1"] and torch.equal(model[1].scores, scores["1"])
    torch.manual_seed(11)
    expected = ConductanceEstimator(model).update(x, y)["1"]
    torch.testing.assert_close(scores["1"], expected)
    assert [m.training for m in model] == [True, True, True, False, True, True]
    assert all(p.grad is None for p in model.parameters())
    model(x).sum().backward()  # the training forward now uses the buckets


def test_prepare_step_update_every_and_missing_scores():
    model = small_model(warmup_steps=1)
    model.train()
    x, y = torch.randn(16, 6, device=DEVICE), torch.randint(0, 3, (16,), device=DEVICE)
    ran = []
    for _ in range(8):
        ran.append(bool(prepare_step(model, x, y, progress=0.5, update_every=4)))
        model(x)
    # call 0 is in warm-up; call 1 is not due but has no scores yet; then every 4th call
    assert ran == [False, True, False, False, True, False, False, False]
    model.eval()
    assert prepare_step(model, x, y, progress=0.5, update_every=1) == {}  # no training forward follows


def test_prepare_step_without_ydrop_only_sets_progress_and_validates():
    recorder = ProgressRecorder()
    model = nn.Sequential(nn.Linear(2, 2), recorder)
    x, y = torch.randn(4, 2), torch.zeros(4, dtype=torch.long)
    assert prepare_step(model, x, y, progress=1.0) == {}
    assert recorder.seen == [1.0]
    with pytest.raises(ValueError, match="progress"):
        prepare_step(model, x, y, progress=1.5)
    with pytest.raises(ValueError, match="update_every"):
        prepare_step(model, x, y, progress=0.5, update_every=0)


def test_prepare_step_for_a_language_model_interpolates_the_embedding():
    torch.manual_seed(12)
    model = TinyLM().to(DEVICE).train()
    tokens = torch.randint(0, 11, (16, 5), device=DEVICE)
    scores = prepare_step(model, tokens, tokens, progress=0.0, input_module=model.embed, subsample=1.0)
    cond = ConductanceEstimator(model, input_module=model.embed).conductance(tokens, tokens)["tail.1"]
    assert cond.shape == (16, 5, 8)
    torch.testing.assert_close(scores["tail.1"], cond.mean((0, 1)))  # one score per feature, mean over T
    assert model.embed.weight.grad is None
    model(tokens)
