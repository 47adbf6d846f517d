"""Y-Drop: conductance-biased dropout.

Georgiou, Paraskevopoulos & Potamianos, "Y-Drop: A Conductance based Dropout for fully connected
layers", arXiv 2409.09088 (2024); behaviour follows the authors' code (efthymisgeo/regit,
``modules/idrop.py`` ``ConDropout`` with ``cont_pdf="bucket"``, ``inv_trick="exp-average"``).

Units are ranked by their batch-mean layer conductance (see
:class:`autodropout.regularizers._conductance.ConductanceEstimator`, which fills the scores through
:meth:`YDrop.set_scores`; training loops call :func:`autodropout.regularizers.training_step.prepare_step`
before each training forward). The upper half of the units by score is dropped with ``p_high``, the
lower half with ``p_low``: *important units are dropped more*, so the network cannot lean on a few
of them. Kept values are rescaled by a per-unit running average of their keep probability rather than
by ``1 / (1 - p)``, so that a unit's output stays unbiased over time while it moves between buckets.

Shapes: ``(B, N)`` (units along dim 1), ``(B, T, N)`` (units along the last dim, one score per
feature shared over time) and ``(B, C, H, W)`` (one score per channel, shared over H and W). A 4-D
input is always read as ``(B, C, H, W)``, so per-head attention tensors ``(B, heads, T, d)`` are not
a supported layout.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from autodropout.core.checks import is_int, is_real
from autodropout.regularizers.registry import RegularizerInfo, register

# The reference code's `sigma_drop` quirk resamples the bucket rates every batch around its default
# thresholds (p_thres), not around p_buckets: min(base + |N(0, sigma)|, cap) for (low, high).
SIGMA_DROP_BASE = (0.1, 0.6)
SIGMA_DROP_CAP = (0.5, 0.9)


def feature_dim(ndim: int) -> int:
    """The unit axis of a ``(B, N)``, ``(B, T, N)`` or ``(B, C, H, W)`` activation."""
    if ndim in (2, 4):
        return 1
    if ndim == 3:
        return 2
    raise ValueError(
        f"YDrop expects an input of shape (B, N), (B, T, N) or (B, C, H, W); got {ndim} dimensions"
    )


def bucket_keep_probs(
    scores: Tensor, p_low: float, p_high: float, drop_low: bool = False
) -> Tensor:
    """Keep probability per unit from the "bucket" mapping.

    Units are sorted by ``scores`` (shape ``(N,)``, a stable sort, so ties keep index order); the
    ``ceil(N / 2)`` highest get ``1 - p_high`` and the ``floor(N / 2)`` lowest ``1 - p_low``, as in
    the reference's ``generate_bucket_mask``. ``drop_low=True`` ranks by ``-scores`` instead, so the
    least important half is the one dropped with ``p_high``. Returns float32 ``(N,)`` on the scores'
    device.
    """
    n = scores.numel()
    ranked = -scores if drop_low else scores
    high = torch.zeros(n, dtype=torch.bool, device=scores.device)
    high[torch.argsort(ranked, stable=True)[n // 2:]] = True
    return torch.where(high, 1.0 - p_high, 1.0 - p_low).float()


def ydrop(x: Tensor, keep: Tensor | float, scale: Tensor | float, dim: int) -> Tensor:
    """``x * Bernoulli(keep) * scale`` with ``keep`` and ``scale`` per unit along ``dim``.

    ``keep`` and ``scale`` are ``(N,)`` tensors (``N = x.shape[dim]``) or scalars; the Bernoulli mask
    is drawn per element. With ``scale = 1 / keep`` this is inverted dropout.
    """
    with torch.no_grad():
        shape = [1] * x.ndim
        shape[dim] = -1
        if isinstance(keep, Tensor):
            keep = keep.view(shape)
        if isinstance(scale, Tensor):
            scale = scale.view(shape)
        # Draw in at least float32: bfloat16 uniforms would quantise the keep probabilities.
        noise = torch.rand(
            x.shape, device=x.device, dtype=torch.promote_types(x.dtype, torch.float32)
        )
        multiplier = torch.where(noise < keep, scale, 0.0).to(x.dtype)
    return x * multiplier


def _check_rate(name: str, value: float) -> float:
    if not is_real(value, 0.0, 1.0, high_open=True):
        raise ValueError(f"YDrop: {name} must be a drop probability in [0, 1), got {value!r}")
    return float(value)


class YDrop(nn.Module):
    """Y-Drop (arXiv 2409.09088): bucketed dropout driven by per-unit conductance scores.

    Args:
        p: nominal drop rate (the registry's rate parameter): the mean of the two bucket rates, the
            warm-up rate unless ``warmup_p`` is given, and the default buckets
            ``p -/+ min(p, 1 - p) / 2``, so ``p = 0.5`` gives the paper's ``[0.25, 0.75]`` and
            ``p = 0`` is the identity. Defaults to 0.5, or to ``(p_low + p_high) / 2`` when both are
            given (giving all three must be consistent).
        p_low: drop rate of the low-score half (give together with ``p_high``).
        p_high: drop rate of the high-score half; ``p_low <= p_high``.
        ema_alpha: rate of the per-unit keep-probability running average ``pi <- (1 - a) pi + a keep``
            (reference: 1e-3 CIFAR-10, 1e-2 MNIST, 1e-4 CIFAR-100). ``pi`` starts at the first
            post-warm-up keep probabilities, so a unit that stays in its bucket is unbiased from the
            first step (the reference starts every unit at 0.5).
        warmup_steps: number of training-mode forward calls that run plain inverted dropout with
            ``warmup_p`` before the buckets take over (the reference warms up for 5 epochs on CIFAR,
            2 on MNIST). Eval-mode calls do not count.
        warmup_p: warm-up drop rate; defaults to ``p``.
        drop_low: drop the *low*-score half with ``p_high`` instead (the anti-Y-Drop ablation).
        sigma_drop: opt-in reproduction of the reference configs' quirk: each training step draws
            ``p_low = min(0.1 + |N(0, s_low)|, 0.5)`` and ``p_high = min(0.6 + |N(0, s_high)|, 0.9)``
            (means about 0.14 / 0.64 for the configs' 0.05), ignoring the bucket rates. A float means
            the same sigma for both buckets. Cannot be combined with ``p_low`` / ``p_high``.

    After warm-up a training forward needs scores (``set_scores``) of shape ``(N,)``; without them it
    raises. Eval mode is the identity. The step count, running average and scores are saved in the
    module's state dict (``get_extra_state``); the running average stays float32 whatever the module's
    dtype, because a bfloat16 average would not move at ``ema_alpha = 1e-3``.
    """

    def __init__(
        self,
        p: float | None = None,
        p_low: float | None = None,
        p_high: float | None = None,
        *,
        ema_alpha: float = 1e-3,
        warmup_steps: int = 0,
        warmup_p: float | None = None,
        drop_low: bool = False,
        sigma_drop: float | tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        if (p_low is None) != (p_high is None):
            raise ValueError("YDrop: give both p_low and p_high, or neither")
        if p_low is not None and p_high is not None:
            if sigma_drop is not None:
                raise ValueError(
                    "YDrop: sigma_drop resamples the bucket rates itself; drop p_low/p_high"
                )
            p_low, p_high = _check_rate("p_low", p_low), _check_rate("p_high", p_high)
            if p_low > p_high:
                raise ValueError(f"YDrop: p_low={p_low} must not exceed p_high={p_high}")
            mean = (p_low + p_high) / 2
            if p is not None and abs(_check_rate("p", p) - mean) > 1e-9:
                raise ValueError(
                    f"YDrop: p={p} must equal (p_low + p_high) / 2 = {mean} (or leave p unset)"
                )
            p = mean
        else:
            p = _check_rate("p", 0.5 if p is None else p)
            spread = min(p, 1.0 - p) / 2
            p_low, p_high = p - spread, p + spread
        if not isinstance(ema_alpha, (int, float)) or not 0.0 < ema_alpha <= 1.0:
            raise ValueError(f"YDrop: ema_alpha must be in (0, 1], got {ema_alpha!r}")
        if not is_int(warmup_steps, 0):
            raise ValueError(f"YDrop: warmup_steps must be an int >= 0, got {warmup_steps!r}")
        if sigma_drop is not None:
            sigmas = (sigma_drop, sigma_drop) if isinstance(sigma_drop, (int, float)) else sigma_drop
            if len(sigmas) != 2 or not all(isinstance(s, (int, float)) and s >= 0 for s in sigmas):
                raise ValueError(
                    f"YDrop: sigma_drop must be a float >= 0 or a pair (low, high), got {sigma_drop!r}"
                )
            sigma_drop = (float(sigmas[0]), float(sigmas[1]))
        self.p = p
        self.p_low = p_low
        self.p_high = p_high
        self.ema_alpha = float(ema_alpha)
        self.warmup_steps = warmup_steps
        self.warmup_p = p if warmup_p is None else _check_rate("warmup_p", warmup_p)
        self.drop_low = bool(drop_low)
        self.sigma_drop: tuple[float, float] | None = sigma_drop
        self.step_count = 0
        self._scores: Tensor | None = None
        self._keep_ema: Tensor | None = None

    @property
    def scores(self) -> Tensor | None:
        """The last scores given to :meth:`set_scores`, float32 ``(N,)``, or ``None``."""
        return self._scores

    @property
    def keep_ema(self) -> Tensor | None:
        """Per-unit running average of the keep probability, float32 ``(N,)``, or ``None``."""
        return self._keep_ema

    @property
    def is_identity(self) -> bool:
        """True when every rate this module can use is zero."""
        return self.sigma_drop is None and self.p_high == 0.0 and self.warmup_p == 0.0

    @property
    def needs_scores(self) -> bool:
        """Whether the next training forward ranks units (warm-up over, rates non-zero)."""
        return not self.is_identity and self.step_count >= self.warmup_steps

    def set_scores(self, scores: Tensor) -> None:
        """Set the per-unit importance scores ``(N,)`` that the next training forwards rank."""
        if not isinstance(scores, Tensor) or scores.ndim != 1 or not scores.is_floating_point():
            raise ValueError(
                "YDrop.set_scores: scores must be a 1-D floating tensor with one entry per unit, got "
                + (f"shape {tuple(scores.shape)} {scores.dtype}" if isinstance(scores, Tensor)
                   else type(scores).__name__)
            )
        if not bool(torch.isfinite(scores).all()):
            raise ValueError("YDrop.set_scores: scores contain NaN or infinite values")
        self._scores = scores.detach().float().clone()

    def _bucket_rates(self) -> tuple[float, float]:
        if self.sigma_drop is None:
            return self.p_low, self.p_high
        noise = torch.randn(2).abs().tolist()
        return (
            min(SIGMA_DROP_BASE[0] + self.sigma_drop[0] * noise[0], SIGMA_DROP_CAP[0]),
            min(SIGMA_DROP_BASE[1] + self.sigma_drop[1] * noise[1], SIGMA_DROP_CAP[1]),
        )

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.is_identity:
            return x
        dim = feature_dim(x.ndim)
        if self.step_count < self.warmup_steps:
            self.step_count += 1
            return ydrop(x, 1.0 - self.warmup_p, 1.0 / (1.0 - self.warmup_p), dim)
        n = x.shape[dim]
        if self._scores is None:
            raise RuntimeError(
                "YDrop: no conductance scores after warm-up; call "
                "autodropout.regularizers.training_step.prepare_step(model, inputs, targets, "
                "progress) before each training forward, or set_scores() yourself"
            )
        if self._scores.numel() != n:
            raise ValueError(
                f"YDrop: scores have {self._scores.numel()} entries but the input "
                f"{tuple(x.shape)} has {n} units along dim {dim}"
            )
        self._scores = self._scores.to(x.device)
        keep = bucket_keep_probs(self._scores, *self._bucket_rates(), drop_low=self.drop_low)
        if self._keep_ema is None:
            self._keep_ema = keep.clone()
        elif self._keep_ema.numel() != n:
            raise ValueError(
                f"YDrop: input has {n} units along dim {dim}, earlier inputs had "
                f"{self._keep_ema.numel()}; use one YDrop module per site"
            )
        else:
            self._keep_ema = self._keep_ema.to(x.device).lerp_(keep, self.ema_alpha)
        self.step_count += 1
        return ydrop(x, keep, self._keep_ema.reciprocal(), dim)

    @classmethod
    def before_step(cls, modules: list[YDrop], step: Any) -> dict[str, Tensor]:
        """The training-step hook (:mod:`~autodropout.regularizers.training_step`): one conductance
        pass scores every site of the model when due, and whenever an active site has no scores yet.

        The options ``n_steps``, ``subsample``, ``target_fn`` and ``input_module`` go to the
        estimator; ``input_module`` defaults to the model's ``input_embedding`` (token models, whose
        ids cannot be interpolated), if it has one.
        """
        active = [m for m in modules if m.training and m.needs_scores]
        if not active or not (step.due or any(m.scores is None for m in active)):
            return {}
        # Imported here: the estimator itself imports this module (it scores YDrop sites).
        from autodropout.regularizers._conductance import ConductanceEstimator

        options = {"input_module": getattr(step.model, "input_embedding", None), **step.options}
        return ConductanceEstimator(step.model, modules, **options).update(step.inputs, step.targets)

    def get_extra_state(self) -> dict[str, Any]:
        return {"step_count": self.step_count, "scores": self._scores, "keep_ema": self._keep_ema}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.step_count = int(state["step_count"])
        self._scores = state["scores"]
        self._keep_ema = state["keep_ema"]

    def extra_repr(self) -> str:
        rates = (
            f"sigma_drop={self.sigma_drop}" if self.sigma_drop is not None
            else f"p_low={self.p_low:g}, p_high={self.p_high:g}"
        )
        return (
            f"p={self.p:g}, {rates}, ema_alpha={self.ema_alpha:g}, "
            f"warmup_steps={self.warmup_steps}, warmup_p={self.warmup_p:g}, drop_low={self.drop_low}"
        )


register(
    RegularizerInfo(
        name="ydrop",
        factory=YDrop,
        reference="Georgiou, Paraskevopoulos & Potamianos, arXiv 2024 (arXiv 2409.09088)",
        rate_param="p",
        identity_params={"p": 0.0},
        # Inside warm-up (plain dropout at p) so that the shared property tests can run the module
        # without a model to score; the bucket phase is tested in tests/regularizers/test_ydrop.py.
        example_params={"p": 0.5, "warmup_steps": 10**9},
        input_kinds=("conv", "seq", "flat"),
    )
)
