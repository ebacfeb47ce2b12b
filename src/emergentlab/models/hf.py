"""The `hf` backend: any transformers causal LM (hub id, local folder of safetensors, or a GGUF file).

Scoring follows lm-eval's loglikelihood recipe (context and continuation tokenized so the continuation's tokens are
those of the whole string after the context's; trailing context whitespace moves into the continuation) so our
per-item log-likelihoods match it, but runs leaner: rows are right-padded (no row ever attends to padding under the
causal mask, so each row computes as if alone and results do not depend on batch size), a prefix shared by a whole
batch (few-shot context, the stem of multiple-choice items) is run once and its key/value cache reused, and the
vocabulary projection is applied only at the positions that predict a continuation token.

Weights load from safetensors or GGUF only (`use_safetensors=True`); a folder with only pickled weights is refused.
A local folder holding a plain Llama (the GGUF cache of SmolLM2, say) loads without transformers (`models.llama`:
the same logits, a few tenths of a second instead of seconds of imports); everything else loads through transformers.
`precision` picks the dtype the weights run in ("fp32", the default, or "bf16": 1.5x faster on a CPU with native
bf16 matmuls, at ~5e-2 nats per item, and about 6x *slower* on one without them, which `from_spec` warns of; see
benchmarks/results/hf_speed.md); the log-softmax is taken in fp32 either way.

Generation is our own batched loop over a KV cache, greedy (`generate`) or sampled at a temperature
(`sample`, reproducible per prompt and seed): rows leave the batch as soon as they emit EOS or a stop string, and the
vocabulary projection runs at the last position only.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_model

from emergentlab.errors import UserError
from emergentlab.models.base import Generation, TokenScores, cut_at_stop, pack_batches, pick_tokens, row_uniforms
from emergentlab.records import ScaleFacts

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_STEP = re.compile(r"(?:^|[^a-z])step[-_]?(\d+)", re.IGNORECASE)
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class HFSpec:
    """Where a transformers model lives: a hub id (+ revision), a local folder, or a local GGUF file."""

    source: str  # hub id "ORG/NAME", or a local folder
    revision: str | None = None
    gguf_file: str | None = None  # file name inside `source` (a folder) when the weights are GGUF

    @property
    def local(self) -> bool:
        return self.gguf_file is not None or Path(self.source).is_absolute()

    @property
    def label(self) -> str:
        base = f"{self.source}/{self.gguf_file}" if self.gguf_file else self.source
        return f"{base}@{self.revision}" if self.revision else base


def parse_hf_spec(rest: str) -> HFSpec:
    """`ORG/NAME[@revision]`, a local folder, or a path to a `.gguf` file (the part after `hf:` / `gguf:`)."""
    if not rest:
        raise UserError("empty model spec; expected hf:ORG/NAME[@revision], hf:/local/dir or gguf:/path/file.gguf",
                        field="model")
    # local paths are kept absolute: `./models/x` normalised to `models/x` would read as the hub id models/x
    if rest.endswith(".gguf"):
        p = Path(rest).expanduser().absolute()
        return HFSpec(str(p.parent), gguf_file=p.name)
    is_path = rest.startswith(("/", "./", "../", "~")) or Path(rest).expanduser().exists()
    if is_path:
        return HFSpec(str(Path(rest).expanduser().absolute()))
    repo, _, rev = rest.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise UserError(f"{rest!r} is neither an existing path nor a hub id ORG/NAME[@revision]", field="model")
    return HFSpec(repo, rev or None)


def _check_local(spec: HFSpec) -> None:
    root = Path(spec.source).expanduser()
    if spec.gguf_file is not None:
        f = root / spec.gguf_file
        if not f.is_file():
            raise UserError("GGUF file not found", source=str(f), field="model")
        return
    if not root.is_dir():
        raise UserError("model folder not found", source=str(root), field="model")
    files = [p.name for p in root.iterdir()]
    if not any(n.endswith(".safetensors") for n in files):
        pickled = [n for n in files if n.endswith(_PICKLE_SUFFIXES)]
        if pickled:
            raise UserError(f"only pickled weights ({', '.join(sorted(pickled))}); emergentlab loads safetensors "
                            "or GGUF only (convert with safetensors' convert script)", source=str(root), field="model")
        raise UserError("no *.safetensors weights in the folder", source=str(root), field="model")


def _check_gguf(path: Path) -> None:
    """Parse the GGUF header, metadata and tensor table, so a truncated or foreign file fails with one line.

    transformers' own reader surfaces such files as assorted low-level errors (struct.error on a cut header).
    """
    from gguf import GGUFReader

    try:
        GGUFReader(path)
    except (ValueError, struct.error, IndexError, KeyError, OSError) as e:
        raise UserError(f"could not parse GGUF file: {e}", source=str(path), field="model") from None


@dataclass(frozen=True)
class GgufFormat:
    """A GGUF file's weight format: `name` from its header (general.file_type, e.g. "Q4_1", "Q8_0", "F16"; the most
    common tensor type when the header has none), `bits_per_weight` over all its tensors (block scales and
    minimums included, so a Q4_1 file of a small model with a Q8_0 embedding reads ~5.7) and `weights` (elements)."""

    name: str
    bits_per_weight: float
    weights: int


def gguf_format(path: Path) -> GgufFormat:
    """The weight format of the GGUF file at `path` (header and tensor table only); UserError if it cannot parse."""
    from collections import Counter

    from gguf import GGUFReader, LlamaFileType

    try:
        r = GGUFReader(path)
    except (ValueError, struct.error, IndexError, KeyError, OSError) as e:
        raise UserError(f"could not parse GGUF file: {e}", source=str(path), field="model") from None
    weights = sum(int(t.n_elements) for t in r.tensors)
    bits = 8.0 * sum(int(t.n_bytes) for t in r.tensors) / max(weights, 1)
    f = r.fields.get("general.file_type")
    try:
        name = LlamaFileType(int(f.parts[f.data[0]][0])).name.removeprefix("MOSTLY_") if f is not None else ""
    except ValueError:  # a file type newer than this gguf package
        name = ""
    if not name:
        name = Counter(t.tensor_type.name for t in r.tensors).most_common(1)[0][0] if r.tensors else "unknown"
    return GgufFormat(name, bits, weights)


def native_bf16() -> bool:
    """Whether torch has native bf16 matmuls on this CPU (oneDNN with AVX512-BF16 or AMX)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def gguf_cache_dir(gguf: Path) -> Path:
    """Where the fp32 dequantization of `gguf` is kept: keyed by the SHA-256 of the file's bytes.

    Dequantizing a GGUF in transformers takes about a minute even for a 135M model; the safetensors copy loads in
    seconds. Keying by content (0.1 s per 100 MB to hash) shares the copy between paths, venvs and re-downloads of
    the same file, and never serves a stale copy for a file rewritten in place. The root is $EMERGENTLAB_CACHE,
    else ~/.cache/emergentlab.
    """
    h = hashlib.sha256()
    with gguf.open("rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    key = h.hexdigest()[:16]
    root = Path(os.environ.get("EMERGENTLAB_CACHE") or Path.home() / ".cache" / "emergentlab")
    return root / "gguf" / f"{gguf.stem}-{key}"


def _load(spec: HFSpec, trust_remote_code: bool, dtype: torch.dtype) -> tuple[Any, Any]:
    if spec.local:
        _check_local(spec)
    if spec.gguf_file:
        cached = gguf_cache_dir(Path(spec.source).expanduser() / spec.gguf_file)
        if (cached / "config.json").is_file():
            return _load(HFSpec(str(cached)), False, dtype)
        _check_gguf(Path(spec.source).expanduser() / spec.gguf_file)
        tok, model = _load_uncached(spec, trust_remote_code, torch.float32)
        tmp = cached.with_name(f"{cached.name}.tmp{os.getpid()}")
        # save_pretrained refuses a GGUF-loaded model (it counts as quantized); the dequantized weights are plain
        # fp32 tensors, so write them and the config directly (save_model drops the tied duplicate)
        tmp.mkdir(parents=True, exist_ok=True)
        save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        cfg = model.config.to_dict()
        cfg.pop("quantization_config", None)
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2))
        tok.save_pretrained(tmp)
        if cached.exists():  # another process finished first
            shutil.rmtree(tmp)
        else:
            tmp.replace(cached)
        return tok, model.to(dtype)
    return _load_uncached(spec, trust_remote_code, dtype)


def _load_uncached(spec: HFSpec, trust_remote_code: bool, dtype: torch.dtype) -> tuple[Any, Any]:
    if spec.local and not spec.gguf_file and not trust_remote_code:
        from emergentlab.models import llama

        if (native := llama.load(Path(spec.source).expanduser(), dtype)) is not None:
            return native
    from huggingface_hub import constants as hub_constants
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kw: dict[str, Any] = {"revision": spec.revision, "trust_remote_code": trust_remote_code}
    if spec.gguf_file:
        kw["gguf_file"] = spec.gguf_file
    try:
        tok = AutoTokenizer.from_pretrained(spec.source, **kw)
        model = AutoModelForCausalLM.from_pretrained(
            spec.source, dtype=dtype, use_safetensors=None if spec.gguf_file else True, **kw)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        first = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
        offline = hub_constants.HF_HUB_OFFLINE and not spec.local
        hint = " (HF_HUB_OFFLINE is set: only models already in the local cache can load)" if offline else ""
        what = "could not parse GGUF file" if spec.gguf_file else "could not load model"
        raise UserError(f"{what}: {first}{hint}", source=spec.label, field="model") from None
    return tok, model.eval()


def _common_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for i in range(n):
        t = first[i]
        if any(s[i] != t for s in seqs):
            return i
    return n


class HFBackend:
    """Scores, generates and samples with a transformers causal LM, or with the native Llama of `models.llama`,
    which offers the same interface.

    `batch_size` caps rows per forward pass and `batch_tokens` caps rows × padded length, so memory stays bounded
    for long prompts; neither changes the log-probs beyond float noise. Short rows go 128 at a time: the matmuls of a
    small model run 10 % faster with 128 rows of 12 tokens than with 32 (benchmarks/results/lmeval.md). The model
    runs in the dtype it comes in (`from_spec(precision=...)` picks it); `precision` names that dtype.
    """

    def __init__(self, model: Any, tokenizer: Any, name: str, spec: HFSpec | None = None, batch_size: int = 128,
                 batch_tokens: int = 16384) -> None:
        self.model, self.tok, self.name, self.spec = model, tokenizer, name, spec
        self.batch_size, self.batch_tokens = batch_size, batch_tokens
        cfg = model.config
        self.max_length = int(getattr(cfg, "max_position_embeddings", None) or 2048)
        self.base = model.base_model
        self.head = model.get_output_embeddings()
        # the vocabulary projection runs in fp32 whatever the body's dtype: in bf16, logits of 10-30 nats would
        # carry ~0.1 nats of rounding each, the largest part of bf16's error (only scored positions pay for it)
        self.weights_changed()
        self._exact_head = self._head_matches()

    def weights_changed(self) -> None:
        """Re-read the output head after the weights were changed in place (rounded by `models.quant`, say): the
        fp32 copy of a bf16 model's head would otherwise keep the old weights."""
        self._head_w = self.head.weight.float()

    @property
    def precision(self) -> str:
        """The key of `PRECISIONS` for the dtype the weights run in ("fp32" for any other dtype, e.g. fp16)."""
        return "bf16" if self.model.dtype == torch.bfloat16 else "fp32"

    @classmethod
    def from_spec(cls, spec: HFSpec, name: str | None = None, trust_remote_code: bool = False,
                  precision: str = "fp32", **kw: Any) -> HFBackend:
        if precision not in PRECISIONS:
            raise UserError(f"unknown precision {precision!r} (known: {', '.join(PRECISIONS)})", field="precision")
        if precision == "bf16" and not native_bf16():
            warnings.warn("bf16 on this CPU (no native bf16 matmuls: AVX512-BF16 or AMX) runs several times slower "
                          "than fp32 (0.17x measured on AVX2); fp32 is the faster choice here", RuntimeWarning,
                          stacklevel=2)
        tok, model = _load(spec, trust_remote_code, PRECISIONS[precision])
        return cls(model, tok, name or spec.label, spec, **kw)

    # ---- scale facts ------------------------------------------------------------------------------------------
    def facts(self) -> ScaleFacts:
        params = {p.data_ptr(): p.numel() for p in self.model.parameters()}  # tied weights count once
        n = float(sum(params.values()))
        emb = self.model.get_input_embeddings().weight
        non_emb = n - emb.numel()
        head = self.head.weight if self.head is not None else None
        if head is not None and head.data_ptr() != emb.data_ptr():
            non_emb -= head.numel()
        step = None  # tokens follow from a declared `tokens_per_step` on the rung (ScaleFacts.merged)
        if self.spec is not None and (m := _STEP.search(self.spec.revision or "")):
            step = float(m.group(1))
        return ScaleFacts(params=n, non_embedding_params=non_emb, step=step,
                          extra={"architecture": type(self.model).__name__,
                                 "vocab_size": int(self.model.config.vocab_size)})

    # ---- tokenization -----------------------------------------------------------------------------------------
    def _encode(self, text: str) -> list[int]:
        return list(self.tok(text)["input_ids"])

    @property
    def _prefix_token(self) -> int:
        t = self.tok.bos_token_id if self.tok.bos_token_id is not None else self.tok.eos_token_id
        if t is None:
            raise ValueError(f"{self.name}: tokenizer has neither BOS nor EOS to stand for an empty prompt")
        return int(t)

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Token ids of (context, continuation) the way lm-eval makes them for loglikelihood requests."""
        if not context:
            return [self._prefix_token], [t for t in self._encode(continuation) if t != self.tok.bos_token_id]
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:
            continuation, context = context[-n_spaces:] + continuation, context[:-n_spaces]
        whole = self._encode(context + continuation)
        ctx = self._encode(context)
        return ctx, whole[len(ctx):]

    def _piece(self, i: int) -> str:
        return str(self.tok.decode([i]))

    # ---- scoring ----------------------------------------------------------------------------------------------
    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        """fp32 logits from final hidden states (the projection itself in fp32), with the output scalings."""
        bias = getattr(self.head, "bias", None)
        return self._scaled(torch.nn.functional.linear(h.float(), self._head_w,
                                                       None if bias is None else bias.float()))

    def _scaled(self, logits: torch.Tensor) -> torch.Tensor:
        """The output scalings some architectures apply to their logits."""
        cfg = self.model.config
        if (scale := getattr(cfg, "logit_scale", None)) is not None:
            logits = logits * scale
        if (scale := getattr(cfg, "logits_scaling", None)) is not None:
            logits = logits / scale
        if (cap := getattr(cfg, "final_logit_softcapping", None)) is not None:
            logits = torch.tanh(logits / cap) * cap
        return logits

    @torch.inference_mode()
    def _head_matches(self) -> bool:
        """Whether base model + output head reproduces the full model's logits (else score via the full model)."""
        ids = torch.tensor([[self._prefix_token, *self._encode(" 1 2 3")]])
        full = self.model(input_ids=ids).logits.float()
        ours = self._scaled(self.head(self.base(input_ids=ids).last_hidden_state).float())
        return bool(torch.allclose(full, ours, atol=1e-4, rtol=1e-4))

    def _hidden(self, rows: list[list[int]], prefix: int) -> torch.Tensor:
        """Final hidden states (B, T, d) for right-padded `rows[i][prefix:]`, running the shared prefix once."""
        cache = None
        if prefix:
            out = self.base(input_ids=torch.tensor([rows[0][:prefix]]), use_cache=True)
            cache = out.cache
            if len(rows) > 1 and cache is not None:
                cache.batch_repeat_interleave(len(rows))
        T = max(len(r) for r in rows) - prefix
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        ids = torch.full((len(rows), T), pad, dtype=torch.long)
        for r, s in enumerate(rows):
            ids[r, : len(s) - prefix] = torch.tensor(s[prefix:])
        if cache is None:
            return self.base(input_ids=ids).last_hidden_state
        pos = torch.arange(prefix, prefix + T)[None].expand(len(rows), T)
        return self.base(input_ids=ids, cache=cache, position_ids=pos, use_cache=True).last_hidden_state

    @torch.inference_mode()
    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[TokenScores]:
        if len(prompts) != len(continuations):
            raise ValueError("prompts and continuations differ in length")
        pairs = [self.encode_pair(p, c) for p, c in zip(prompts, continuations, strict=True)]
        # the model input is (context + continuation) minus its last token, left-truncated to the window
        rows = [(ctx + cont)[-(self.max_length + 1):][:-1] for ctx, cont in pairs]
        n_cont = [len(cont) for _, cont in pairs]
        out: list[TokenScores | None] = [None] * len(pairs)
        todo = [i for i in range(len(pairs)) if n_cont[i]]
        for i in range(len(pairs)):
            if not n_cont[i]:
                out[i] = TokenScores((), (), ())
        # by length, then token ids: a batch then holds rows of about one length (13 % padding fell to 5 % on
        # zero-shot arithmetic), and rows of one length sharing a prefix (a few-shot context) still sit side by side
        order = sorted(todo, key=lambda i: (len(rows[i]), rows[i]))
        for batch in pack_batches(order, [len(r) for r in rows], self.batch_tokens, self.batch_size):
            seqs = [rows[i] for i in batch]
            # the prefix (run on its own, its hidden states not kept) must stop before every row's first scored
            # position, len(row) - n_cont: choices sharing their first tokens would otherwise lose a scored position
            limit = min(len(rows[i]) - n_cont[i] for i in batch)
            prefix = min(_common_prefix_len(seqs), limit) if len(batch) > 1 else 0
            if not self._exact_head:
                prefix = 0
            if self._exact_head:
                h = self._hidden(seqs, prefix)
                sel = torch.cat([h[r, len(s) - prefix - n_cont[i]: len(s) - prefix]
                                 for r, (i, s) in enumerate(zip(batch, seqs, strict=True))])
                logits = self._logits(sel)
            else:
                T = max(len(s) for s in seqs)
                ids = torch.zeros((len(seqs), T), dtype=torch.long)
                for r, s in enumerate(seqs):
                    ids[r, : len(s)] = torch.tensor(s)
                full = self.model(input_ids=ids).logits.float()
                logits = torch.cat([full[r, len(s) - n_cont[i]: len(s)]
                                    for r, (i, s) in enumerate(zip(batch, seqs, strict=True))])
            tgt = torch.tensor([t for i in batch for t in pairs[i][1]])
            logp = logits.log_softmax(-1)
            lp = logp.gather(1, tgt[:, None]).squeeze(1).tolist()
            greedy = (logits.argmax(-1) == tgt).tolist()
            at = 0
            for i in batch:
                n = n_cont[i]
                out[i] = TokenScores(tuple(lp[at: at + n]), tuple(greedy[at: at + n]),
                                     tuple(self._piece(t) for t in pairs[i][1]))
                at += n
        return [o for o in out if o is not None]

    # ---- generation -------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def generate(self, prompts: Sequence[str], max_new_tokens: int, stop: Sequence[str] = ()) -> list[Generation]:
        return self._generations(prompts, max_new_tokens, stop, 0.0, ())

    @torch.inference_mode()
    def sample(self, prompts: Sequence[str], max_new_tokens: int, stop: Sequence[str] = (),
               temperature: float = 1.0, seeds: Sequence[int] = ()) -> list[Generation]:
        """One draw per prompt at `temperature` (`Sampler.sample`): pure temperature sampling from the fp32 logits
        (no top-k, no top-p, no repetition penalty), row i's uniforms from `row_uniforms(prompts[i], seeds[i])`, so
        the batch a prompt lands in does not change its draw (up to float noise at a token's boundary)."""
        if seeds and len(seeds) != len(prompts):
            raise ValueError("seeds and prompts differ in length")
        return self._generations(prompts, max_new_tokens, stop, temperature, seeds or [0] * len(prompts))

    def _generations(self, prompts: Sequence[str], max_new_tokens: int, stop: Sequence[str], temperature: float,
                     seeds: Sequence[int]) -> list[Generation]:
        """Greedy (`seeds` empty) or sampled continuations, batched as `score` batches, cut at the stop strings."""
        room = max(self.max_length - max_new_tokens, 1)
        encoded = [(self._encode(p) if p else [self._prefix_token])[-room:] for p in prompts]
        # sorted as in `score`: by length, then token ids
        order = sorted(range(len(prompts)), key=lambda i: (len(encoded[i]), encoded[i]))
        out: list[Generation | None] = [None] * len(prompts)
        for batch in pack_batches(order, [len(e) + max_new_tokens for e in encoded], self.batch_tokens,
                                  self.batch_size):
            u = (torch.from_numpy(np.stack([row_uniforms(prompts[i], seeds[i], max_new_tokens) for i in batch]))
                 if seeds else None)
            new_ids = self._decode([encoded[i] for i in batch], max_new_tokens, stop, temperature, u)
            for i, new in zip(batch, new_ids, strict=True):
                text, _ = cut_at_stop(str(self.tok.decode(new)), stop)
                pieces, acc = [], 0
                for t in new:
                    if acc >= len(text):
                        break
                    piece = self._piece(t)
                    pieces.append(piece)
                    acc += len(piece)
                out[i] = Generation(text, tuple(pieces))
        return [o for o in out if o is not None]

    def _new_cache(self) -> Any:
        if (new := getattr(self.model, "new_cache", None)) is not None:  # the native Llama (`models.llama`)
            return new()
        from transformers import DynamicCache

        return DynamicCache(config=self.model.config)

    def _decode(self, rows: list[list[int]], max_new_tokens: int, stop: Sequence[str], temperature: float = 0.0,
                u: torch.Tensor | None = None) -> list[list[int]]:
        """Token ids after each row (EOS excluded), up to `max_new_tokens` or the first stop string: greedy, or drawn
        at `temperature` with row r's uniform for step k at u[r, k] (`pick_tokens`).

        A prefix shared by every row (the few-shot context) runs once; the rest of each row is left-padded after
        it (the padding masked out), so every row's next token is predicted at the last column. A row that is done
        is dropped from the batch (and its KV cache) at once, so a batch costs what its live rows cost.
        """
        cache = self._new_cache()
        # every row keeps at least its last token out of the prefix, to predict from
        prefix = min(_common_prefix_len(rows), min(len(r) for r in rows) - 1) if len(rows) > 1 else 0
        if prefix:
            self.base(input_ids=torch.tensor([rows[0][:prefix]]), cache=cache, use_cache=True)
            cache.batch_repeat_interleave(len(rows))
        T = max(len(r) for r in rows) - prefix
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else self._prefix_token
        ids = torch.full((len(rows), T), pad, dtype=torch.long)
        own = torch.zeros((len(rows), T), dtype=torch.long)
        for r, s in enumerate(rows):
            ids[r, T - len(s) + prefix:] = torch.tensor(s[prefix:])
            own[r, T - len(s) + prefix:] = 1
        mask = torch.cat([own.new_ones((len(rows), prefix)), own], dim=1)
        pos = prefix + (own.cumsum(-1) - 1).clamp(min=0)
        eos = self.tok.eos_token_id
        # each token decodes to at least one character, so a stop string lies within the last len(stop) tokens
        window = max((len(x) for x in stop), default=0) + 1
        new: list[list[int]] = [[] for _ in rows]
        live = list(range(len(rows)))
        for step in range(max_new_tokens):
            h = self.base(input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache,
                          use_cache=True).last_hidden_state[:, -1]
            logits = self._logits(h)
            nxt = logits.argmax(-1) if u is None else pick_tokens(logits, temperature, u[live, step])
            keep = []
            for j, t in enumerate(nxt.tolist()):
                row = new[live[j]]
                if t == eos:
                    continue
                row.append(t)
                if not (any(stop) and cut_at_stop(str(self.tok.decode(row[-window:])), stop)[1]):
                    keep.append(j)
            if not keep:
                break
            if len(keep) < len(live):
                idx = torch.tensor(keep)
                cache.batch_select_indices(idx)
                nxt, mask, pos = nxt[idx], mask[idx], pos[idx]
                live = [live[j] for j in keep]
            ids = nxt[:, None]
            mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=1)
            pos = pos[:, -1:] + 1
        return new


def flops_per_token(backend: HFBackend) -> float:
    """Forward FLOPs per scored token, 2 × non-embedding parameters (Kaplan et al. 2020), ignoring attention."""
    n = backend.facts().non_embedding_params
    return 2.0 * n if n is not None and not math.isnan(n) else 0.0
