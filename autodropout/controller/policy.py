"""The controller policy: an autoregressive LSTM over a search space's token sequence.

ENAS-style (Pham et al., ICML 2018, "Efficient Neural Architecture Search via Parameter Sharing"),
as used by AutoDropout (Pham & Le, AAAI 2021, arXiv 2101.01761, sec. 3.3): the LSTM emits one token
per :class:`~autodropout.search_spaces.Decision`, from a softmax head of its own with an embedding
table of its own (``share_heads=True``: one per decision *type*, ``size``, ``stride``, ..., shared by
all sites of a group as in ENAS, so the parameter count does not grow with the model depth; the
embedding sites' types are their own, ``("embedding", "size")`` is not ``("layer", "size")``). The input at step 0
is a learned start vector; the input at step ``i`` is the embedding of the token chosen at step
``i - 1``, looked up in that step's table.

Logits are ``tanh_constant * tanh(head(h) / temperature)``: divide by the temperature first, then
clip with tanh, in ENAS's order. Clipping bounds every log-probability ratio by ``2 * tanh_constant``
so the policy cannot collapse onto one choice early; ``tanh_constant=None`` turns clipping off.

No Ray here: :class:`Policy` is the small protocol the REINFORCE trainer and the searcher rely on,
so another policy (a transformer, a tabular one) can be swapped in.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autodropout.search_spaces import SearchSpace

__all__ = ["LSTMPolicy", "Policy"]


@runtime_checkable
class Policy(Protocol):
    """What :class:`~autodropout.controller.reinforce.Reinforce` needs from a policy.

    ``tokens`` is a LongTensor (n, L) with ``L = len(space.decisions)``; ``log_probs`` and
    ``entropies`` are (n,) sums over the L positions.
    """

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        ...

    def log_prob(self, tokens: Tensor | Sequence[Sequence[int]]) -> tuple[Tensor, Tensor]:
        ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]:
        ...

    def state_dict(self) -> Mapping[str, Any]:
        ...

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> Any:
        ...


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


# Chooses the token of one position from its (n, k) log-probabilities; `position` indexes the sequence.
_Chooser = Callable[[Tensor, int], Tensor]


class LSTMPolicy(nn.Module):
    """Autoregressive LSTM controller over ``space.decisions``.

    Args:
        space: the search space; its ``decisions`` fix the sequence length ``L`` and, by their
            ``type_key`` (or ``key``), the embedding tables and heads.
        hidden: LSTM hidden size.
        embedding: size of the token embeddings and of the learned start input.
        temperature: logits are divided by it (before the tanh clip); > 1 flattens the policy.
        tanh_constant: logits are clipped to ``(-tanh_constant, tanh_constant)`` by
            ``tanh_constant * tanh(.)``; ``None`` disables clipping.
        layers: number of stacked LSTM layers.
        seed: seeds the parameter initialisation (uniform in [-0.1, 0.1] as in ENAS, which makes the
            untrained policy close to uniform); the global RNG is not touched.
        share_heads: one embedding table and softmax head per decision *type*, shared by all sites
            (ENAS; parameters do not grow with depth), instead of one per position (the default).
            Measured on a synthetic reward whose best choice differs between sites, shared heads learn
            at about half the speed (docs/search.md, "The controller's update rule"): a shared head has
            to tell sites apart from the LSTM state alone, and every site's update moves the others.
    """

    def __init__(
        self,
        space: SearchSpace,
        hidden: int = 64,
        embedding: int = 32,
        temperature: float = 1.0,
        tanh_constant: float | None = 2.5,
        layers: int = 1,
        seed: int = 0,
        share_heads: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(space, SearchSpace):
            raise TypeError(f"space must be a SearchSpace (e.g. ConvSpace), got {type(space).__name__}")
        self.space = space
        self.hidden = _positive_int("hidden", hidden)
        self.embedding_dim = _positive_int("embedding", embedding)
        self.layers = _positive_int("layers", layers)
        self.temperature = _positive_float("temperature", temperature)
        self.tanh_constant = None if tanh_constant is None else _positive_float("tanh_constant", tanh_constant)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an int, got {seed!r}")

        if not isinstance(share_heads, bool):
            raise ValueError(f"share_heads must be true or false, got {share_heads!r}")
        self.share_heads = share_heads
        # One table and head per decision type (ENAS), keyed by (group, name) so that an embedding
        # site's "size" never shares the layers'; or one per position (the key names the position).
        choices_of = {(d.type_key if share_heads else d.key): len(d.choices) for d in space.decisions}
        type_names, num_choices = list(choices_of), list(choices_of.values())
        # The default initialisers draw from the global RNG; fork it so building a policy never
        # shifts the random stream of the user's own training code. `seed` sets the real init below.
        with torch.random.fork_rng(devices=[]):
            self.start = nn.Parameter(torch.empty(self.embedding_dim))
            self.embeddings = nn.ModuleList(nn.Embedding(k, self.embedding_dim) for k in num_choices)
            self.heads = nn.ModuleList(nn.Linear(self.hidden, k) for k in num_choices)
            self.lstm = nn.LSTM(self.embedding_dim, self.hidden, num_layers=self.layers)
        self._types = [type_names.index(d.type_key if share_heads else d.key) for d in space.decisions]
        self.register_buffer(
            "_choice_counts", torch.tensor([len(d.choices) for d in space.decisions]), persistent=False
        )

        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-0.1, 0.1, generator=generator)

    @property
    def num_positions(self) -> int:
        """Sequence length ``L`` (= ``len(space.decisions)``)."""
        return len(self._types)

    @property
    def max_entropy(self) -> float:
        """Entropy of the uniform policy: ``sum(log(len(choices)))`` over the L positions (nats); an
        upper bound when the space forbids some choices after some prefixes (``choice_mask``)."""
        return sum(math.log(len(d.choices)) for d in self.space.decisions)

    def _logits(self, output: Tensor, position: int) -> Tensor:
        logits = self.heads[self._types[position]](output) / self.temperature
        if self.tanh_constant is not None:
            logits = self.tanh_constant * torch.tanh(logits)
        return logits

    def _allowed(self, prefixes: list[list[int]], position: int) -> Tensor | None:
        """(n, k) bool of the choices ``space.choice_mask`` allows at ``position`` after each row's
        prefix, or ``None`` when every choice is allowed for every row (the common case)."""
        masks = [self.space.choice_mask(prefix) for prefix in prefixes]
        if all(mask is None for mask in masks):
            return None
        every = (True,) * len(self.space.decisions[position].choices)
        return torch.tensor([every if mask is None else mask for mask in masks], device=self.start.device)

    def _unroll(self, n: int, choose: _Chooser) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
        """Run the LSTM for L steps on a batch of ``n``; ``choose`` picks each step's tokens.

        Returns tokens (n, L), log_probs (n,), entropies (n,) and the per-position (n, k_i)
        log-softmaxes. Sampling, teacher forcing and greedy decoding share this one code path, which
        is what makes ``log_prob(tokens)`` reproduce the log-prob recorded at sampling.

        Choices the space forbids after the tokens so far (``SearchSpace.choice_mask``) get a logit
        of -inf before the softmax, so they are never drawn, the allowed ones share all the mass, and
        log-probs and entropies are those of the distribution actually sampled from.
        """
        inputs = self.start.expand(1, n, self.embedding_dim)
        state: tuple[Tensor, Tensor] | None = None
        tokens, log_probs, entropies, log_softmaxes = [], [], [], []
        prefixes: list[list[int]] = [[] for _ in range(n)]
        for position in range(self.num_positions):
            output, state = self.lstm(inputs, state)
            logits = self._logits(output[0], position)
            allowed = self._allowed(prefixes, position)
            if allowed is not None:
                logits = logits.masked_fill(~allowed, -math.inf)
            log_p = F.log_softmax(logits, dim=-1)
            token = choose(log_p, position)
            if allowed is not None:
                forbidden = (~allowed.gather(1, token[:, None]))[:, 0].nonzero()
                if forbidden.numel():
                    row = int(forbidden[0, 0])
                    raise ValueError(
                        f"tokens[{row}, {position}] ({self.space.decisions[position].key}) = {int(token[row])} "
                        "is a choice the space forbids after the earlier tokens of that row "
                        "(SearchSpace.choice_mask, e.g. a Transformer layer with every sublayer off)"
                    )
            tokens.append(token)
            log_probs.append(log_p.gather(1, token[:, None])[:, 0])
            # Forbidden choices have p = 0 and log p = -inf: count them as 0, without a 0 * inf NaN
            # in the forward or the backward pass.
            finite_log_p = log_p if allowed is None else log_p.masked_fill(~allowed, 0.0)
            entropies.append(-(log_p.exp() * finite_log_p).sum(-1))
            log_softmaxes.append(log_p)
            inputs = self.embeddings[self._types[position]](token)[None]
            for prefix, value in zip(prefixes, token.tolist()):
                prefix.append(value)
        return (
            torch.stack(tokens, 1),
            torch.stack(log_probs, 1).sum(1),
            torch.stack(entropies, 1).sum(1),
            log_softmaxes,
        )

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Draw ``n`` token sequences (without autograd; recompute with :meth:`log_prob` to train).

        Args:
            n: batch size.
            generator: a ``torch.Generator`` on the policy's device; same state => same samples.

        Returns:
            tokens LongTensor (n, L); log_probs (n,): log-probability of each sequence; entropies (n,):
            sum over positions of the entropy (nats) of each step's conditional distribution.
        """
        n = _positive_int("n", n)

        def draw(log_p: Tensor, position: int) -> Tensor:
            return torch.multinomial(log_p.exp(), 1, generator=generator)[:, 0]

        tokens, log_probs, entropies, _ = self._unroll(n, draw)
        return tokens, log_probs, entropies

    def log_prob(self, tokens: Tensor | Sequence[Sequence[int]]) -> tuple[Tensor, Tensor]:
        """Log-probabilities (n,) and entropies (n,) of given token sequences (n, L), with autograd.

        Teacher forcing: step ``i`` is fed the given token ``i - 1``, so the result equals what
        :meth:`sample` recorded for the same tokens (up to float rounding across batch sizes).
        """
        tokens = self._check_tokens(tokens)
        _, log_probs, entropies, _ = self._unroll(tokens.shape[0], lambda _, position: tokens[:, position])
        return log_probs, entropies

    @torch.no_grad()
    def greedy(self) -> list[int]:
        """The most likely token at every step given the greedy prefix (the policy's current mode)."""
        tokens, _, _, _ = self._unroll(1, lambda log_p, _: log_p.argmax(-1))
        return tokens[0].tolist()

    @torch.no_grad()
    def choice_probabilities(self) -> dict[str, Tensor]:
        """Per-position choice distributions for logging, keyed by ``Decision.key`` ("site 0.size").

        Each value is the exact conditional softmax (k,) at that position along the greedy path
        (the prefix is :meth:`greedy`'s tokens), so it is deterministic and free of sampling noise;
        it is not the marginal over all prefixes.
        """
        _, _, _, log_softmaxes = self._unroll(1, lambda log_p, _: log_p.argmax(-1))
        return {d.key: log_p[0].exp().cpu() for d, log_p in zip(self.space.decisions, log_softmaxes)}

    def _check_tokens(self, tokens: Tensor | Sequence[Sequence[int]]) -> Tensor:
        device = self.start.device
        if not isinstance(tokens, Tensor):
            try:
                tokens = torch.tensor(tokens, dtype=torch.long, device=device)
            except (TypeError, ValueError) as error:
                raise ValueError(f"tokens must be an (n, {self.num_positions}) array of ints: {error}") from None
        if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
            raise ValueError(f"tokens must be an integer tensor, got dtype {tokens.dtype}")
        if tokens.dim() != 2 or tokens.shape[0] < 1 or tokens.shape[1] != self.num_positions:
            raise ValueError(f"tokens must have shape (n, {self.num_positions}), got {tuple(tokens.shape)}")
        tokens = tokens.to(device=device, dtype=torch.long)
        bad = ((tokens < 0) | (tokens >= self._choice_counts)).any(0).nonzero()
        if bad.numel():
            position = int(bad[0, 0])
            decision = self.space.decisions[position]
            raise ValueError(
                f"tokens[:, {position}] ({decision.key}) must be in 0..{len(decision.choices) - 1}, "
                f"got {tokens[:, position].tolist()}"
            )
        return tokens

    def extra_repr(self) -> str:
        return (
            f"space={self.space!r}, hidden={self.hidden}, embedding={self.embedding_dim}, layers={self.layers}, "
            f"temperature={self.temperature}, tanh_constant={self.tanh_constant}, share_heads={self.share_heads}"
        )
