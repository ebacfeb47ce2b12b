"""Train one tiny GPT on "input=target" lines, or fine-tune a trained one (tiny or hf) on a task's lines: AdamW,
warmup + cosine decay, bf16 autocast where the CPU has it. One optimizer loop (`optimize`) serves all three.

Framing matches what `TinyBackend` scores: every training row starts with token 0 (PAD/BOS) at position 0,
followed by whole lines joined by "\\n" (the last one cut at the block edge). So a zero-shot prompt
`PAD input=` is the first line of a row, and a few-shot prompt `PAD demo\\ndemo\\ninput=` is a later one. An hf
model's rows start with its BOS (or EOS) token and join lines with its tokens for "\\n".
"""

from __future__ import annotations

import math
import random
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from emergentlab.models.tiny import GPT, PAD, CharTokenizer, GPTConfig, Tokenizer, save_checkpoint

if TYPE_CHECKING:
    from emergentlab.models.hf import HFBackend

# Called after every optimizer step with (step, total_steps, info); info holds "loss" (nats/token, the
# training batch) and "tokens" (seen so far), plus "val_loss" on steps where it was measured.
Progress = Callable[[int, int, dict[str, float]], None]


def cpu_has_bf16() -> bool:
    """True when oneDNN has native bf16 kernels here (AVX-512 BF16 or AMX): only then does autocast pay."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@dataclass
class TrainConfig:
    """How to train. Token counts are input positions (batch_size · block_size per step)."""

    tokens: int = 1_000_000  # training budget in tokens
    batch_size: int = 32  # sequences per step
    block_size: int = 64  # tokens per sequence (≤ the model's block_size)
    lr: float = 2e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # cosine decays to lr · min_lr_ratio
    warmup_steps: int = 50
    beta1: float = 0.9
    beta2: float = 0.99
    weight_decay: float = 0.1  # on matrices only, not embeddings' norms/gains
    grad_clip: float = 1.0
    seed: int = 0
    bf16: bool | None = None  # None: on when the CPU has native bf16
    val_fraction: float = 0.02  # share of the lines held out for validation loss
    eval_interval: int = 0  # steps between validation losses reported to `progress`; 0: only at the end
    checkpoints: int = 0  # extra log-spaced checkpoints out/step-XXXXXX/ (a "model × step" ladder)
    checkpoint_every: int = 0  # and one every this many steps (0: none), so late training is resolved too

    def __post_init__(self) -> None:
        for name in ("tokens", "batch_size", "block_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")

    @property
    def steps(self) -> int:
        return max(1, self.tokens // (self.batch_size * self.block_size))


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to cfg.lr, then cosine decay to cfg.lr · min_lr_ratio at the last step."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


def log_steps(total: int, n: int, every: int = 0) -> list[int]:
    """The steps 1 … `total` at which a run logs: `n` spaced evenly in log-step (1 and `total` among them), plus
    every `every`-th step when `every` > 0 (so late events are resolved too), plus `total` itself."""
    logs = {max(1, round(total ** (i / max(1, n - 1)))) for i in range(n)}
    lin = set(range(every, total + 1, every)) if every > 0 else set()
    return sorted(logs | lin | {total})


def pack_rows(lines: list[list[int]], block: int, start: int = PAD,
              sep: tuple[int, ...] = (ord("\n"),)) -> torch.Tensor:
    """Rows of block + 1 tokens: `start` (PAD), then whole lines each ended by `sep` ("\\n"), the last one cut.

    A short final row is padded with -1, which is masked out of the loss (and read as token 0 in the input).
    """
    rows: list[list[int]] = []
    cur = [start]
    for ids in lines:
        if len(cur) >= block + 1:
            rows.append(cur[: block + 1])
            cur = [start]
        cur += [*ids, *sep]
    if len(cur) > 1:
        rows.append(cur[: block + 1])
    out = torch.full((len(rows), block + 1), -1, dtype=torch.long)
    for r, row in enumerate(rows):
        out[r, : len(row)] = torch.tensor(row)
    return out


def _batches(lines: list[list[int]], cfg: TrainConfig, rng: random.Random, start: int = PAD,
             sep: tuple[int, ...] = (ord("\n"),)) -> Iterator[torch.Tensor]:
    """Endless (batch_size, block_size + 1) batches; lines reshuffled every epoch, rows always start with `start`."""
    buf: list[torch.Tensor] = []
    while True:
        order = lines[:]
        rng.shuffle(order)
        rows = pack_rows(order, cfg.block_size, start, sep)
        buf.extend(rows.unbind(0))
        while len(buf) >= cfg.batch_size:
            yield torch.stack(buf[: cfg.batch_size])
            del buf[: cfg.batch_size]


# token ids (batch, T) → logits (batch, T, vocab): a GPT itself, or an adapter around an hf model
Forward = Callable[[torch.Tensor], torch.Tensor]


def _loss(model: Forward, rows: torch.Tensor) -> torch.Tensor:
    x, y = rows[:, :-1].clamp(min=0), rows[:, 1:]
    logits = model(x)
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=-1)


@torch.no_grad()
def val_loss(model: GPT, rows: torch.Tensor, batch_size: int = 64) -> float:
    """Mean cross-entropy in nats per token over packed validation rows, in fp32 (as `TinyBackend` scores)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(rows), batch_size):
        b = rows[i : i + batch_size]
        n = int((b[:, 1:] >= 0).sum())
        total += float(_loss(model, b)) * n
        count += n
    model.train(was_training)
    return total / max(count, 1)


def _optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=True)


def uses_bf16(cfg: TrainConfig) -> bool:
    """Whether steps run under bf16 autocast: `cfg.bf16`, or (None) whether the CPU has native bf16 kernels."""
    return cpu_has_bf16() if cfg.bf16 is None else cfg.bf16


def optimize(model: torch.nn.Module, cfg: TrainConfig, loss_of: Callable[[], torch.Tensor],
             after: Callable[[int, float], None]) -> None:
    """The one training loop: `cfg.steps` AdamW steps on `model` (decay on matrices only, `_optimizer`).

    Each step sets the learning rate (`lr_at`), computes `loss_of()` (the step's batch loss, nats) under bf16
    autocast where `uses_bf16` and with the math attention kernel, back-propagates, clips the gradient norm at
    `cfg.grad_clip` and updates; then `after(done, loss)` gets the 1-based step count and the loss as a float.
    Callers bring their own data and loss (text lines here, bursty sequences in `train.bursty`)."""
    opt = _optimizer(model, cfg)
    use_bf16 = uses_bf16(cfg)
    for step in range(cfg.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        # the math kernel, not flash: on CPU flash attention's backward took 43 % of a step at T = 64 and the
        # math path is 1.05-1.3x faster end to end on the shapes in benchmarks/train_throughput.py
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16), sdpa_kernel(SDPBackend.MATH):
            loss = loss_of()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        after(step + 1, loss.item())


def train(model_cfg: GPTConfig, cfg: TrainConfig, lines: list[str], out: Path,
          progress: Progress | None = None, extra_meta: dict[str, Any] | None = None,
          tokenizer: Tokenizer | None = None) -> dict[str, Any]:
    """Train a fresh `GPT(model_cfg)` on `lines`, read by `tokenizer` (characters when None), and save it to `out`
    (safetensors + config.json, whose "tokenizer" entry makes the checkpoint load with the same tokenizer).

    Returns the checkpoint's facts: params, non_embedding_params, tokens (seen), flops (6·N·D with N all
    parameters), val_loss (nats/token on held-out lines; a token is the tokenizer's), wall_s, step, seed, the train
    config and the tokenizer's spec.
    """
    tok = tokenizer if tokenizer is not None else CharTokenizer()
    if cfg.block_size > model_cfg.block_size:
        raise ValueError(f"train block_size {cfg.block_size} exceeds the model's block_size {model_cfg.block_size}")
    if tok.vocab_size > model_cfg.vocab_size:
        raise ValueError(f"vocab_size {model_cfg.vocab_size} is smaller than the tokenizer's {tok.vocab_size} ids")
    if len(lines) < 2:
        raise ValueError("need at least 2 training lines (some are held out for validation)")
    return _train(model_cfg, cfg, lines, out, progress, {"tokenizer": tok.spec(), **(extra_meta or {})},
                  time.perf_counter(), tok)


def _train(model_cfg: GPTConfig, cfg: TrainConfig, lines: list[str], out: Path, progress: Progress | None,
           extra_meta: dict[str, Any], t0: float, tok: Tokenizer) -> dict[str, Any]:
    rng = random.Random(cfg.seed)
    shuffled = lines[:]
    rng.shuffle(shuffled)
    n_val = max(1, int(len(shuffled) * cfg.val_fraction))
    train_set = set(shuffled[n_val:])
    # a line repeated in both halves would leak the answer into "held-out" loss
    val_lines = [tok.encode(s) for s in shuffled[:n_val] if s not in train_set]
    train_ids = [tok.encode(s) for s in shuffled[n_val:]]
    val_rows = pack_rows(val_lines or train_ids[:1], cfg.block_size)

    model = GPT(model_cfg, torch.Generator().manual_seed(cfg.seed)).train()
    use_bf16 = uses_bf16(cfg)
    n_params = model.num_params()
    facts = {"params": n_params, "non_embedding_params": model.num_params(non_embedding=True),
             "seed": cfg.seed, "train": {**asdict(cfg), "bf16": use_bf16}, "command": shlex.join(sys.argv),
             **extra_meta}
    ckpt_steps = (set(log_steps(cfg.steps, cfg.checkpoints, cfg.checkpoint_every))
                  if cfg.checkpoints or cfg.checkpoint_every else set())
    tokens_per_step = cfg.batch_size * cfg.block_size

    def snapshot(step: int, path: Path) -> dict[str, Any]:
        tokens = step * tokens_per_step
        meta = {**facts, "step": step, "tokens": tokens, "flops": 6.0 * n_params * tokens,
                "val_loss": val_loss(model, val_rows), "wall_s": round(time.perf_counter() - t0, 3)}
        save_checkpoint(model, path, meta)
        return meta

    meta: dict[str, Any] = {}

    def after(done: int, loss: float) -> None:
        nonlocal meta
        info = {"loss": loss, "tokens": float(done * tokens_per_step)}
        if done in ckpt_steps and done != cfg.steps:
            info["val_loss"] = snapshot(done, out / f"step-{done:06d}")["val_loss"]
        elif cfg.eval_interval and done % cfg.eval_interval == 0 and done != cfg.steps:
            info["val_loss"] = val_loss(model, val_rows)
        if done == cfg.steps:
            meta = snapshot(done, out)
            info["val_loss"] = meta["val_loss"]
        if progress is not None:
            progress(done, cfg.steps, info)

    batches = _batches(train_ids, cfg, random.Random(f"{cfg.seed}:batches"))
    optimize(model, cfg, lambda: _loss(model, next(batches)), after)
    return meta


def _steps(model: torch.nn.Module, cfg: TrainConfig, batches: Iterator[torch.Tensor], forward: Forward,
           progress: Progress | None) -> list[float]:
    """`optimize` on `batches` through `forward`, reporting to `progress`; the training loss of every step (nats
    per token), and the model left in eval mode."""
    losses: list[float] = []
    tokens_per_step = cfg.batch_size * cfg.block_size
    model.train()

    def after(done: int, loss: float) -> None:
        losses.append(loss)
        if progress is not None:
            progress(done, cfg.steps, {"loss": loss, "tokens": float(done * tokens_per_step)})

    optimize(model, cfg, lambda: _loss(forward, next(batches)), after)
    model.eval()
    return losses


@dataclass(frozen=True)
class Finetuned:
    """What a fine-tuning run did: `losses`, the training loss of every step (nats/token); `tokens`, input positions
    seen (steps · batch_size · block_size); `lines`, the distinct lines it was trained on; `wall_s`, seconds."""

    losses: tuple[float, ...]
    tokens: int
    lines: int
    wall_s: float


def finetune(model: GPT, cfg: TrainConfig, lines: list[str], progress: Progress | None = None,
             tokenizer: Tokenizer | None = None) -> Finetuned:
    """Fine-tune a trained tiny `model` in place on `lines` ("input=target", e.g. k examples of a task's train split),
    read by the checkpoint's `tokenizer` (characters when None), rows framed as in pre-training, batches drawn as
    `train` draws them (seeded by `cfg.seed`). Every line is trained on (none is held out: with k examples, each
    one counts); the model is left in eval mode."""
    if not lines:
        raise ValueError("need at least one line to fine-tune on")
    if cfg.block_size > model.cfg.block_size:
        raise ValueError(f"train block_size {cfg.block_size} exceeds the model's block_size {model.cfg.block_size}")
    t0 = time.perf_counter()
    tok = tokenizer if tokenizer is not None else CharTokenizer()
    ids = [tok.encode(s) for s in lines]
    losses = _steps(model, cfg, _batches(ids, cfg, random.Random(f"{cfg.seed}:batches")), model, progress)
    return Finetuned(tuple(losses), cfg.steps * cfg.batch_size * cfg.block_size, len(set(lines)),
                     time.perf_counter() - t0)


def finetune_hf(backend: HFBackend, cfg: TrainConfig, lines: list[str],
                progress: Progress | None = None) -> Finetuned:
    """Full fine-tuning of an hf backend's model in place, by the same loop and framing as `finetune`: rows start with
    the tokenizer's BOS (or EOS) token and join the lines' tokens with those of "\\n"; weights stay in the dtype they
    run in (bf16 autocast only when `cfg.bf16` is True)."""
    if not lines:
        raise ValueError("need at least one line to fine-tune on")
    t0 = time.perf_counter()
    tok = backend.tok
    start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    if start is None:
        raise ValueError(f"{backend.name}: tokenizer has neither BOS nor EOS to start a row with")
    sep = tuple(t for t in tok("\n", add_special_tokens=False)["input_ids"])
    ids = [list(tok(s, add_special_tokens=False)["input_ids"]) for s in lines]
    model = backend.model
    batches = _batches(ids, cfg, random.Random(f"{cfg.seed}:batches"), int(start), sep)
    # bf16 autocast only when asked: on SmolLM2-135M it made the backward pass 4.5x slower on this CPU
    losses = _steps(model, replace(cfg, bf16=bool(cfg.bf16)), batches, lambda x: model(input_ids=x).logits, progress)
    return Finetuned(tuple(losses), cfg.steps * cfg.batch_size * cfg.block_size, len(set(lines)),
                     time.perf_counter() - t0)
