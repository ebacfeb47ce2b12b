"""In-context learning from bursty data (Chan et al. 2022), small enough for a CPU: train a tiny GPT on the
sequences of `emergentlab.tasks.symbols` and measure, as it trains, whether it learns from its context.

The model reads x₁ y₁ … x_C y_C x_q and predicts labels with the unembedding restricted to the label tokens (Chan
et al.'s classifier). Chan et al. train on the query's label y_q alone; `interim_weight` (their
``w_interim_predictions``; 1 by default here) also trains on every context label, which gives a repeated class's
later labels, predictable from the context, a gradient of their own: with the query alone the default L2-d64 run
did not learn the map within 1500 steps (benchmarks/results/icl.md, section 4). Training goes through
`train.loop.optimize`, the package's one loop.

At log-spaced steps, and every `eval_every` steps (`train.loop.log_steps`), it logs

* ``icl_acc``: in-context accuracy on *held-out* classes — items never seen in training, labelled with symbols
  drawn per episode (`tasks.symbols.draw_episodes`), ``ways``-way with ``context / ways`` shots each (Chan et
  al.'s few-shot holdout evaluation). It is the share of episodes where the target symbol's logit is the highest
  among the episode's W symbols (chance 1/W); ``icl_exact`` is the share where it is the highest of every label
  (a model that copies some label of its context scores 1/W here too, one that guesses from nowhere ~1/n_labels);
  ``icl_loss`` is −log p(target) over every label (nats). Fresh episodes at every logged step, so the noise of
  the logged points is independent from step to step (`analysis.dynamics.jump_interval` relies on it).
* ``icl_seen_acc``: the same 2-way accuracy on *training* classes given novel symbol maps: the context must
  override what the weights know (neither symbol is the class's own label, so the weights favour neither). A
  model that matches items by a class feature it learned, rather than by their tokens, can score here and not on
  held-out classes.
* ``control_acc``: the same on contexts whose shots carry symbols drawn at random from the W (the map untold):
  it must stay at chance, or the model reads something other than the map.
* ``iwl_acc``: in-weights accuracy: training classes as queries (Zipf-drawn) with none of their class in the
  context, so only the weights know the label: the share whose argmax label is one of the class's (with
  polysemy the weights cannot tell which of its labels this sequence uses); ``iwl_loss`` (nats).
* ``val_loss``: query-label cross-entropy (nats) on held-out sequences of the training distribution.
* the induction-head measures of `train.induction`, reused: every head's prefix-matching, previous-token and
  copying scores (``blocks.{i}.attn.head{h}.{score}``) on ``r r`` rows of (held-out item, symbol) pairs
  (`tasks.symbols.repeated_pairs`; prefix matching from each item's last token in the second copy to the label
  after its first occurrence: the attention in-context learning needs here),
  ``induction_score`` (best prefix matching of a head in layer ≥ 1); and ``icl_score``, Olsson et al.'s loss at a
  late token minus at an early one, on the labels: the query label's loss minus the first context label's (nats;
  NaN when `interim_weight` is 0, since the context's labels are then never trained).

After training, `final_eval` scores the same episodes at 0, 1, 2, … shots per way (distractor pairs of other
held-out classes fill the context, so a 0-shot context holds no symbol of the map): the ICL gain per shot count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from emergentlab.models.tiny import GPT, GPTConfig
from emergentlab.records import ScaleFacts
from emergentlab.tasks.symbols import (
    Burstiness,
    Episode,
    SymbolSpace,
    bursty_batch,
    draw_episodes,
    episode_tokens,
    label_positions,
    no_support_batch,
    repeated_pairs,
)
from emergentlab.train.induction import head_scores, induction_score
from emergentlab.train.loop import TrainConfig, log_steps, optimize

# Called at every logged step with (step, total_steps, row) where row holds that step's logged metrics.
BurstyProgress = Callable[[int, int, dict[str, float]], None]


@dataclass
class BurstyConfig:
    """One training run: the model's shape, Chan et al.'s data recipe, the optimizer and the evaluation.

    Defaults: a 2-layer GPT (d 64) on 1024 Zipfian training classes (2-token items over 64 letters), 8 context
    pairs, 90 % bursty sequences with 2 classes × 3 shots, half of them with per-sequence symbols, the loss on
    every label, 1500 steps of 128 sequences. With these, held-out 2-way ICL rose from chance to 0.98 around step
    500; with the query-only loss, or with fixed labels only, it did not appear within 1500 steps
    (benchmarks/results/icl.md)."""

    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 4
    attn_only: bool = False
    n_classes: int = 1024  # training classes (one item and one fixed label each)
    n_holdout: int = 64  # held-out classes, for the in-context evaluation only
    alphabet: int = 64  # tokens the items are spelled with
    item_len: int = 2  # tokens per item
    polysemy: int = 1  # labels per training class, drawn per sequence (Chan et al.'s multiplicity; 1: fixed)
    context: int = 8  # (item, label) pairs before the query
    burstiness: int = 3
    ways: int = 2
    p_bursty: float = 0.9
    zipf: float = 1.0
    p_symbols: float = 0.5  # share of bursty sequences labelled with per-sequence symbols (in-context only)
    interim_weight: float = 1.0  # loss weight of the context's labels relative to the query's (Chan et al.: 0)
    steps: int = 1500
    batch_size: int = 128
    lr: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.1
    seed: int = 0  # weights and training batches; evaluation draws use their own streams (see `train_bursty`)
    bf16: bool | None = None
    checkpoints: int = 20  # log-spaced logged steps
    eval_every: int = 100  # also log every this many steps (0: log-spaced only), to resolve a late jump
    eval_episodes: int = 256  # episodes per logged step for icl_acc and control_acc; sequences for iwl_acc
    final_episodes: int = 500  # episodes of the final n-shot evaluation (the same for every run with this seed)
    final_shots: tuple[int, ...] = field(default=(0, 1, 2, 4))  # shots per way in the final evaluation

    def __post_init__(self) -> None:
        for name in ("n_layer", "n_embd", "n_head", "steps", "batch_size", "checkpoints", "eval_episodes",
                     "final_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        self.final_shots = tuple(self.final_shots)
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.interim_weight < 0:
            raise ValueError(f"interim_weight must be ≥ 0, got {self.interim_weight}")
        self.space, self.data  # noqa: B018 -- validates the classes and the data recipe
        if self.n_holdout < self.ways + self.context:
            raise ValueError(f"n_holdout must be ≥ ways + context ({self.ways + self.context}) to fill episodes, got "
                             f"{self.n_holdout}")
        if self.context % self.ways:
            raise ValueError(f"context ({self.context}) must be a multiple of ways ({self.ways})")
        if not self.final_shots or min(self.final_shots) < 0 or max(self.final_shots) * self.ways > self.context:
            raise ValueError(f"final_shots must be in 0 … context / ways = {self.context // self.ways}, got "
                             f"{self.final_shots}")

    @property
    def space(self) -> SymbolSpace:
        return SymbolSpace(self.n_classes, self.n_holdout, self.alphabet, self.item_len, self.polysemy)

    @property
    def data(self) -> Burstiness:
        return Burstiness(self.context, self.burstiness, self.ways, self.p_bursty, self.zipf, self.p_symbols)

    @property
    def run_name(self) -> str:
        return f"L{self.n_layer}-d{self.n_embd}-seed{self.seed}"

    def model_config(self) -> GPTConfig:
        return GPTConfig(vocab_size=self.space.vocab_size, block_size=self.data.seq_len(self.space) - 1,
                         n_layer=self.n_layer, n_head=self.n_head, n_embd=self.n_embd, attn_only=self.attn_only)

    def train_config(self) -> TrainConfig:
        """The loop's config: `steps` steps of `batch_size` sequences (tokens counts the input positions)."""
        t = self.data.seq_len(self.space) - 1
        return TrainConfig(tokens=self.steps * self.batch_size * t, batch_size=self.batch_size, block_size=t,
                           lr=self.lr, warmup_steps=self.warmup_steps, weight_decay=self.weight_decay,
                           seed=self.seed, bf16=self.bf16)


@dataclass
class BurstyTraining:
    """`history`: one row per logged step (columns in the module docstring, plus step, train_loss (nats, the mean
    over the steps since the last logged one) and wall_s); `final`: `final_eval`'s frame; `facts`: the model as a
    rung: params, non_embedding_params, tokens (input positions seen), flops (6·N·D), step, loss (val_loss, nats)."""

    history: pd.DataFrame
    final: pd.DataFrame
    facts: ScaleFacts
    wall_s: float
    model: GPT = field(repr=False)


def label_logits(model: GPT, tokens: torch.Tensor, space: SymbolSpace, last_only: bool = False) -> torch.Tensor:
    """Logits over the label tokens (the model's classifier) where each label is predicted, from the last token
    of its item: (B, pairs, n_labels) for full rows `tokens` (B, T) without their final label, or at the last
    position only (B, n_labels)."""
    h = model.hidden(tokens)
    if last_only:
        h = h[:, -1]
    else:
        h = h[:, torch.from_numpy(label_positions(space, (tokens.shape[1] + 1) // space.pair_len) - 1)]
    return h @ model.lm_head.weight[space.alphabet :].T


@torch.no_grad()
def episode_scores(model: GPT, space: SymbolSpace, episodes: tuple[Episode, ...], shots: int, length: int,
                   control: bool = False) -> pd.DataFrame:
    """Per episode: `target` and `predicted` label index (argmax over every label), `way_right` (the target's
    logit beats the episode's other symbols') and `logprob`, log p(target) over every label (nats)."""
    x = torch.from_numpy(episode_tokens(space, episodes, shots, length, control))
    logp = label_logits(model, x, space, last_only=True).float().log_softmax(-1)
    target = torch.tensor([ep.target for ep in episodes])
    lp_target = logp.gather(1, target[:, None]).squeeze(1)
    way_best = logp.gather(1, torch.tensor([ep.symbols for ep in episodes])).max(1).values
    return pd.DataFrame({"episode": [ep.id for ep in episodes], "target": target.numpy(),
                         "predicted": logp.argmax(1).numpy(), "way_right": (lp_target >= way_best).numpy(),
                         "logprob": lp_target.numpy()})


def _pair_losses(model: GPT, space: SymbolSpace, rows: np.ndarray,
                 query_only: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross-entropy (B, pairs) in nats over every label, whether the argmax label is one of the right class's
    (B, pairs)) for each label of full token rows, or (`query_only`) for the query's alone (B, 1)."""
    at = label_positions(space, rows.shape[1] // space.pair_len)
    y = torch.from_numpy(rows[:, at[-1:] if query_only else at] - space.alphabet)
    x = torch.from_numpy(rows[:, :-1])
    logits = label_logits(model, x, space, last_only=True)[:, None] if query_only else label_logits(model, x, space)
    logits = logits.float()
    right = logits.argmax(-1) // space.polysemy == y // space.polysemy
    return F.cross_entropy(logits.transpose(1, 2), y, reduction="none"), right


@torch.no_grad()
def _label_scores(model: GPT, space: SymbolSpace, rows: np.ndarray) -> tuple[float, float, float]:
    """(query accuracy, query-label cross-entropy in nats, ICL score in nats) of full token rows. Accuracy: the
    argmax label is one of the query class's labels. ICL score: the query label's loss minus the first context
    label's (Olsson et al.'s late-minus-early loss, on the labels: the first can only come from the weights)."""
    ce, right = _pair_losses(model, space, rows)
    return float(right[:, -1].float().mean()), float(ce[:, -1].mean()), float(ce[:, -1].mean() - ce[:, 0].mean())


def final_eval(model: GPT, cfg: BurstyConfig) -> pd.DataFrame:
    """`episode_scores` of `cfg.final_episodes` held-out episodes (stream ``final:{seed}``: the same episodes
    for every model of that seed) at each shot count of `cfg.final_shots`, with a `shots` column."""
    space = cfg.space
    eps = draw_episodes(space.holdout, space.n_labels, cfg.final_episodes, cfg.ways, cfg.context,
                        seed=f"final:{cfg.seed}")
    model.eval()
    out = [episode_scores(model, space, eps, n, cfg.context).assign(shots=n) for n in cfg.final_shots]
    return pd.concat(out, ignore_index=True)


def _evaluate(model: GPT, cfg: BurstyConfig, step: int, held_out: np.ndarray,
              rep: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
    space, ways, ctx = cfg.space, cfg.ways, cfg.context
    eps = draw_episodes(space.holdout, space.n_labels, cfg.eval_episodes, ways, ctx, seed=f"eval:{cfg.seed}:{step}")
    icl = episode_scores(model, space, eps, ctx // ways, ctx)
    control = episode_scores(model, space, eps, ctx // ways, ctx, control=True)
    seen = episode_scores(model, space, draw_episodes(range(space.n_classes), space.n_labels, cfg.eval_episodes, ways,
                                                      ctx, seed=f"seen:{cfg.seed}:{step}"), ctx // ways, ctx)
    iwl_acc, iwl_loss, _ = _label_scores(model, space, no_support_batch(
        space, cfg.data, cfg.eval_episodes, np.random.default_rng([cfg.seed, 3, step])))
    _, val, ratio = _label_scores(model, space, held_out)
    if cfg.interim_weight == 0:  # the context's labels are never trained: their loss says nothing
        ratio = float("nan")
    scores = head_scores(model, *rep)
    return {"icl_acc": float(icl["way_right"].mean()), "icl_exact": float((icl["predicted"] == icl["target"]).mean()),
            "icl_loss": float(-icl["logprob"].mean()), "control_acc": float(control["way_right"].mean()),
            "icl_seen_acc": float(seen["way_right"].mean()),
            "iwl_acc": iwl_acc, "iwl_loss": iwl_loss, "val_loss": val, "icl_score": ratio,
            "induction_score": induction_score(scores, cfg.n_layer), **scores}


def train_bursty(cfg: BurstyConfig, progress: BurstyProgress | None = None) -> BurstyTraining:
    """Train one model on bursty sequences and log the measures of the module docstring at `cfg.checkpoints`
    log-spaced steps (plus every `cfg.eval_every`); then `final_eval`. Random streams: weights and training
    batches from `cfg.seed`; held-out sequences, the ``r r`` rows and every episode from streams of their own
    (so changing the evaluation changes no training draw)."""
    t0 = time.perf_counter()
    space, data = cfg.space, cfg.data
    model = GPT(cfg.model_config(), torch.Generator().manual_seed(cfg.seed)).train()
    tcfg = cfg.train_config()
    rng = np.random.default_rng([cfg.seed, 0])
    held_out, _ = bursty_batch(space, data, 512, np.random.default_rng([cfg.seed, 1]))
    # Olsson et al.'s r r rows, as (item, symbol) pairs: prefix matching from each item's end to its label
    fit = (data.seq_len(space) - 1) // (2 * space.pair_len)  # the most pairs whose r r fits the context
    rep_rows, rep_queries = repeated_pairs(space, 64, max(1, fit), np.random.default_rng([cfg.seed, 2]))
    rep = (torch.from_numpy(rep_rows), torch.from_numpy(rep_queries))
    weights = torch.full((cfg.context + 1,), cfg.interim_weight)
    weights[-1] = 1.0
    weights /= weights.sum()
    to_log = set(log_steps(cfg.steps, cfg.checkpoints, cfg.eval_every))
    rows: list[dict[str, float]] = []
    window: list[float] = []

    def loss_of() -> torch.Tensor:
        batch = bursty_batch(space, data, cfg.batch_size, rng)[0]
        if cfg.interim_weight == 0:  # Chan et al.'s loss: the query's label only
            return _pair_losses(model, space, batch, query_only=True)[0].mean()
        return (_pair_losses(model, space, batch)[0].mean(0) * weights).sum()

    def after(step: int, loss: float) -> None:
        window.append(loss)
        if step not in to_log:
            return
        model.eval()
        row = {"step": float(step), "train_loss": float(np.mean(window)), **_evaluate(model, cfg, step, held_out, rep),
               "wall_s": time.perf_counter() - t0}
        model.train()
        window.clear()
        rows.append(row)
        if progress is not None:
            progress(step, cfg.steps, row)

    optimize(model, tcfg, loss_of, after)
    model.eval()
    final = final_eval(model, cfg)
    n = model.num_params()
    tokens = cfg.steps * tcfg.batch_size * tcfg.block_size
    facts = ScaleFacts(params=float(n), non_embedding_params=float(model.num_params(non_embedding=True)),
                       tokens=float(tokens), flops=6.0 * n * tokens, step=float(cfg.steps), loss=rows[-1]["val_loss"])
    return BurstyTraining(history=pd.DataFrame(rows), final=final, facts=facts, wall_s=time.perf_counter() - t0,
                          model=model)
