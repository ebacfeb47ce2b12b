"""The `openai` backend: any OpenAI-compatible server that echoes prompt log-probs on /v1/completions.

Scoring asks /completions to echo the prompt with log-probs (`echo=True, logprobs=1, max_tokens=1`, the request
lm-eval makes) and keeps the tokens whose text offset lies inside the continuation. Generation uses /completions
(few-shot prompts are raw text, not chat turns) and falls back to /chat/completions when the server has no
completions route; so does sampling (`sample`). Every request sends the neutral settings explicitly (temperature 0,
top_p 1, no frequency, presence or repetition penalty; `sample` replaces the temperature and adds a `seed`), because
a server's defaults are not neutral: llama-cpp-python applies `repeat_penalty=1.1` at temperature 0, and vLLM takes
defaults from the model's generation_config.

What known servers do (from their docs, source and issue trackers, checked 2026-12):

- vLLM (`vllm serve`): echo with log-probs works (prompt log-probs are computed and prepended; the first token's
  entry is null, `top_logprobs` holds the chosen token besides the top k); `prompt` may be a list (batched).
  Docs: docs.vllm.ai "OpenAI-compatible server", vllm/entrypoints/openai/serving_completion.py.
- llama-cpp-python (`python -m llama_cpp.server`): one prompt per request (a list of more than one fails an
  assert: HTTP 500 with an empty message, llama_cpp/server/app.py); `top_k` -1 is refused with HTTP 500 (a
  validation error naming the field; 0 turns top-k off there); echoed log-probs are shifted by one position
  (entry i is log p(token i | tokens <= i): abetlen/llama-cpp-python#1983, open), so its scores are wrong and the
  self-check below refuses it.
- llama.cpp's own `llama-server`: no prompt log-probs; `echo` is rejected ("Only no echo is supported") or the
  log-probs cover the generated tokens only (ggml-org/llama.cpp#8942, #27174; PRs #15189 and #17935 unmerged).
  Generation works, scoring does not: the self-check refuses it.
- TGI (text-generation-inference): its OpenAI routes give log-probs of generated tokens only; prompt log-probs
  exist only on its native /generate route (`decoder_input_details`, off by default since 3.0:
  huggingface/text-generation-inference#3070). Scoring through this backend does not work.
- Hosted OpenAI: echo with log-probs only on legacy completion models; chat models cannot score.

Trust, faults and secrets:

- At load (`from_spec`) a self-check generates one token greedily after a short known text, echoes the text
  with that token, and compares the echoed log-prob of the token with the one reported when generating it. A
  server whose echo is shifted, missing or nonsensical fails with one line naming it.
- Transient faults (timeouts, dropped connections, 408, 429 with its Retry-After honoured, 502/503/504, a 500 on
  a one-prompt request that names none of the fields we send, a 200 whose JSON is truncated or lacks what was asked
  for) are retried, `max_attempts` (5) tries in all, with random exponential backoff. A refusal (400, 422 or 500)
  that names a non-standard field we send is resent with that field's fallback or without it, never retried as it
  was. A permanent refusal (any other 4xx) fails at once; a batch
  the server refuses (a 4xx other than 401/403/404, a 500, or the wrong number of choices) is not retried but
  resent one prompt per request, and every later request is sent that way too, `concurrency` in flight.
- The API key is read from an environment variable and sent only in the Authorization header. A password or
  token written into the URL (`user:KEY@host`, `?api-key=`) is sent as Basic auth / query parameter and
  `redact_spec` hides it wherever the spec is stored or shown; every error message is scrubbed of all of them.
"""

from __future__ import annotations

import email.utils
import json
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import httpx
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from emergentlab.errors import UserError
from emergentlab.models.base import Generation, TokenScores, cut_at_stop
from emergentlab.records import ScaleFacts

T = TypeVar("T")
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
# Query parameters whose name holds one of these are secrets (`key`, `api-key`, `access_token`, `sig`, ...).
_SECRET_PARAM = re.compile(r"key|token|secret|password|passwd|sig|auth|credential", re.IGNORECASE)
_URL = re.compile(r"https?://[^\s'\"<>]+")
_REDACTED = "***"
# The neutral settings sent with every request; `repeat_penalty` is llama.cpp's name, `repetition_penalty`
# vLLM's and TGI's; top_k -1 and min_p 0 turn off the truncations that vLLM (from generation_config) and llama.cpp
# (top_k 40, min_p 0.05 by default) apply when sampling. A server that refuses one of them by name gets its other
# spelling of "off" (`EXTRA_FALLBACK`: vLLM wants top_k -1 and refuses 0, llama-cpp-python refuses -1 and reads 0 as
# off) or, failing that, goes without it (hosted OpenAI and TGI reject unknown fields; see `_post`).
NEUTRAL = {"temperature": 0, "top_p": 1, "frequency_penalty": 0, "presence_penalty": 0, "n": 1}
NEUTRAL_EXTRA = {"repeat_penalty": 1.0, "repetition_penalty": 1.0, "top_k": -1, "min_p": 0.0}
EXTRA_FALLBACK = {"top_k": 0}
# Texts whose greedy next token the self-check scores back; tokenizers that merge it with the text are skipped.
PROBES = ("The capital of France is Paris. The capital of Italy is", "Monday, Tuesday, Wednesday, Thursday,")
# nats: a prompt pass and an incremental decoding step of the same model agree to ~1e-3; a shifted echo is off
# by whole nats (-11.9 nats/token on English against llama-cpp-python)
SELF_CHECK_TOL = 0.1
MAX_RETRY_AFTER_S = 120.0
# Refusals that say nothing about batching (auth, missing route): a refused batch with these is not resent singly
NOT_ABOUT_BATCHES = (401, 403, 404)
BACKOFF_S, MAX_BACKOFF_S = 1.0, 30.0  # seconds: the first retry waits up to BACKOFF_S, no wait exceeds the max


def redact_url(url: str) -> str:
    """`url` with its user-info and the values of secret-looking query parameters replaced by `***`."""
    p = urlsplit(url)
    netloc = f"{_REDACTED}@{p.netloc.rpartition('@')[2]}" if "@" in p.netloc else p.netloc
    query = "&".join(f"{k}={_REDACTED if _SECRET_PARAM.search(k) else v}"
                     for k, v in parse_qsl(p.query, keep_blank_values=True))
    return urlunsplit((p.scheme, netloc, p.path, query, p.fragment))


def redact_spec(spec: str) -> str:
    """A model spec (or any text) with every URL in it redacted: what may be stored, printed or logged.

    Call it wherever a rung's spec leaves memory (records.sqlite, study.json, the terminal); a spec without a URL
    comes back unchanged.
    """
    return _URL.sub(lambda m: redact_url(m.group(0)), spec)


@dataclass(frozen=True)
class ServerOptions:
    """Per-rung settings of an `openai:` backend, from the study file's rung fields of the same names.

    `timeout_s`: seconds to wait for each try of a request; `max_batch`: prompts per request (servers that take
    one are detected); `concurrency`: requests in flight at once.
    """

    timeout_s: float = 60.0
    max_batch: int = 16
    concurrency: int = 4


@dataclass(frozen=True)
class OpenAISpec:
    """`MODEL@BASE_URL[#ENV]`: the served model's name, the API root (ending in /v1), the key's variable name."""

    model: str
    base_url: str
    key_env: str = DEFAULT_KEY_ENV

    @property
    def shown_url(self) -> str:
        """The base URL with any secret in it redacted."""
        return redact_url(self.base_url)


def parse_openai_spec(rest: str, *, source: str | None = None, field: str = "model") -> OpenAISpec:
    """Parse the part after `openai:`, e.g. `smol@http://127.0.0.1:8000/v1#MY_KEY`.

    The model name may itself hold `@` (the last `@` before `http` separates it from the URL). Errors name
    `source` and `field` and never show a secret written into the URL.
    """
    url_at = max(rest.rfind("@http://"), rest.rfind("@https://"))
    if url_at <= 0:
        raise UserError(f"{redact_spec(rest)!r}: expected MODEL@http(s)://HOST[:PORT]/v1[#KEY_ENV_VAR]",
                        source=source, field=field)
    model, url = rest[:url_at], rest[url_at + 1:]
    url, _, env = url.partition("#")
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    if not host:
        raise UserError(f"{redact_url(url)!r} is not a URL with a host", source=source, field=field)
    if env and not env.replace("_", "").isalnum():
        raise UserError(f"{env!r} is not an environment variable name", source=source, field=field)
    return OpenAISpec(model, url.rstrip("/"), env or DEFAULT_KEY_ENV)


class _Transient(Exception):
    """A failure worth retrying; `retry_after` is the server's Retry-After in seconds, when it sent one."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Refused(Exception):
    """A permanent refusal of this request as sent (retrying it unchanged cannot help)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class OpenAIBackend:
    """Scores and generates through an OpenAI-compatible HTTP API.

    Up to `max_batch` prompts go in one request and `concurrency` requests are in flight; a request is tried
    `max_attempts` times, waiting random exponential backoff (`backoff_s` × 2^attempt seconds, at most
    `max_backoff_s`; module defaults BACKOFF_S, MAX_BACKOFF_S) or the server's Retry-After (at most 120 s)
    between tries, `timeout_s` seconds per try.
    """

    def __init__(self, spec: OpenAISpec, name: str | None = None, *, api_key: str | None = None,
                 max_batch: int = 16, concurrency: int = 4, timeout_s: float = 60.0, max_attempts: int = 5,
                 backoff_s: float | None = None, max_backoff_s: float | None = None) -> None:
        self.spec, self.name = spec, name or spec.model
        self.max_batch, self.concurrency, self.max_attempts = max_batch, concurrency, max_attempts
        self.timeout_s = timeout_s
        self.backoff_s = BACKOFF_S if backoff_s is None else backoff_s
        self.max_backoff_s = MAX_BACKOFF_S if max_backoff_s is None else max_backoff_s
        parts = urlsplit(spec.base_url)
        params = parse_qsl(parts.query, keep_blank_values=True)
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
        auth = (user, password) if user or password else None
        self._secrets = sorted({s for s in (api_key, user, password, parts.username, parts.password,
                                            *(v for k, v in params if _SECRET_PARAM.search(k))) if s},
                               key=len, reverse=True)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        bare = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
        self._client = httpx.Client(base_url=bare, params=httpx.QueryParams(parts.query), auth=auth, headers=headers,
                                    timeout=timeout_s, limits=httpx.Limits(max_connections=concurrency))
        self._batch_ok = True  # until the server refuses a multi-prompt request
        self._chat_only = False  # set when /completions is missing (404)
        self._extra = dict(NEUTRAL_EXTRA)  # dropped when the API rejects them as unknown fields

    @classmethod
    def from_spec(cls, rest: str, name: str | None = None, options: ServerOptions | None = None,
                  **kw: Any) -> OpenAIBackend:
        """A checked backend for `openai:<rest>`: the key comes from the variable the spec names (or
        OPENAI_API_KEY), and the server must pass `self_check` before it is used."""
        spec = parse_openai_spec(rest)
        o = options or ServerOptions()
        backend = cls(spec, name, api_key=os.environ.get(spec.key_env), max_batch=o.max_batch,
                      concurrency=o.concurrency, timeout_s=o.timeout_s, **kw)
        backend.self_check()
        return backend

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.spec.model!r}, base_url={self.spec.shown_url!r})"

    def close(self) -> None:
        self._client.close()

    def facts(self) -> ScaleFacts:
        """A server tells nothing of its model's scale: give params / tokens / loss in the study file."""
        return ScaleFacts(extra={"base_url": self.spec.shown_url, "served_model": self.spec.model})

    # ---- errors -----------------------------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        """`text` (often a server's own words) with every secret this backend knows and every URL redacted."""
        for s in self._secrets:
            text = text.replace(s, _REDACTED)
        return redact_spec(text).replace("\n", " ")

    def _error(self, message: str) -> UserError:
        return UserError(self._scrub(message), source=self.spec.shown_url, field=f"rung {self.name!r}")

    # ---- HTTP -------------------------------------------------------------------------------------------------
    def _post_once(self, path: str, body: dict[str, Any], parse: Callable[[dict[str, Any]], T]) -> T:
        batched = isinstance(body.get("prompt"), list) and len(body["prompt"]) > 1
        try:
            r = self._client.post(path, json=body)
        except httpx.TransportError as e:  # timeouts, refused and dropped connections, protocol errors
            raise _Transient(f"{type(e).__name__}: {e}") from e
        if r.status_code >= 400:
            msg = _server_message(r)
            # llama-cpp-python answers a field it refuses with HTTP 500 (a validation error naming it): not transient
            single_500 = r.status_code == 500 and not batched and not _named_extras(msg, body)
            if r.status_code in (408, 429) or r.status_code >= 502 or single_500:
                raise _Transient(f"HTTP {r.status_code}: {msg}", _retry_after(r))
            raise _Refused(r.status_code, msg)
        try:
            data = r.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise _Transient(f"HTTP {r.status_code} with a body that is not JSON ({e})") from e
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise _Transient(f"HTTP {r.status_code} without a 'choices' list")
        return parse(data)

    def _wait(self, state: RetryCallState) -> float:
        backoff = float(wait_random_exponential(multiplier=self.backoff_s, max=self.max_backoff_s)(state))
        failure = state.outcome.exception() if state.outcome else None
        after = getattr(failure, "retry_after", None)
        return max(backoff, min(after, MAX_RETRY_AFTER_S)) if after is not None else backoff

    def _post(self, path: str, body: dict[str, Any], parse: Callable[[dict[str, Any]], T]) -> T:
        """POST with the neutral extras, retrying transient faults; `parse` raising _Transient retries too.

        Raises _Refused for a permanent refusal, UserError when the tries are spent.
        """
        retrying = Retrying(stop=stop_after_attempt(self.max_attempts), wait=self._wait,
                            retry=retry_if_exception_type(_Transient), reraise=False)
        sent = {**body, **self._extra}
        try:
            return retrying(self._post_once, path, sent, parse)
        except _Refused as e:
            named = _named_extras(str(e), sent) if e.status in (400, 422, 500) else []
            # decided from what this request sent, so that requests refused together on other threads agree;
            # replaced whole, so that requests in flight keep the fields they were built with
            extra = dict(self._extra)
            for k in named:
                if k in EXTRA_FALLBACK and sent[k] != EXTRA_FALLBACK[k]:
                    extra[k] = EXTRA_FALLBACK[k]
                else:
                    extra.pop(k, None)
            if not named or {**body, **extra} == sent:
                raise
            self._extra = extra
            return self._post(path, body, parse)
        except RetryError as e:
            last = e.last_attempt.exception()
            raise self._error(f"{path} failed {self.max_attempts} times (timeout {self.timeout_s:g} s per try, "
                              f"settable as the rung's timeout_s), last: {last}") from None

    def _complete(self, path: str, body: dict[str, Any], prompts: Sequence[str],
                  parse: Callable[[dict[str, Any], int], T]) -> list[T]:
        """One result per prompt, `parse(choice, i)` for the choice of prompt i: batched while the server takes
        batches, then one prompt per request. Raises _Refused when the server refuses a single prompt."""

        def one(i: int) -> T:
            return self._post(path, {**body, "prompt": prompts[i]}, lambda d: parse(_choices(d, 1)[0], i))

        def chunk(idx: range) -> list[T]:
            if len(idx) > 1 and self._batch_ok:
                try:
                    return self._post(path, {**body, "prompt": [prompts[i] for i in idx]},
                                      lambda d: [parse(c, i) for i, c in zip(idx, _choices(d, len(idx)),
                                                                              strict=True)])
                except _Refused as e:
                    if e.status in NOT_ABOUT_BATCHES:
                        raise
                    self._batch_ok = False  # this server takes one prompt per request (llama-cpp-python)
            return [one(i) for i in idx]

        size = self.max_batch if self._batch_ok else 1
        chunks = [range(i, min(i + size, len(prompts))) for i in range(0, len(prompts), size)]
        if len(chunks) <= 1 or self.concurrency <= 1:
            return [r for c in chunks for r in chunk(c)]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return [r for part in pool.map(chunk, chunks) for r in part]

    # ---- scoring ----------------------------------------------------------------------------------------------
    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[TokenScores]:
        if len(prompts) != len(continuations):
            raise ValueError("prompts and continuations differ in length")
        texts = [p + c for p, c in zip(prompts, continuations, strict=True)]
        body = {"model": self.spec.model, "max_tokens": 1, "echo": True, "logprobs": 1, **NEUTRAL}
        try:
            return self._complete("/completions", body, texts,
                                  lambda c, i: _continuation_scores(c, len(prompts[i]), len(texts[i])))
        except _Refused as e:
            raise self._error(f"/completions refused a prompt to score ({e}); scoring needs echo=True with "
                              "logprobs on /completions") from None

    def self_check(self) -> None:
        """Refuse a server whose echoed log-probs disagree with the log-probs it reports when generating.

        For each probe text the server generates one token greedily (reporting its log-prob), then scores the
        text plus that token with echo; the two log-probs of the same token in the same context must agree
        within SELF_CHECK_TOL nats. Raises UserError naming the server otherwise.
        """
        try:
            gens = self._complete("/completions", {"model": self.spec.model, "max_tokens": 1, "logprobs": 1,
                                                   **NEUTRAL}, PROBES, lambda c, i: _generated_logprob(c))
        except _Refused as e:
            raise self._error(f"self-check: /completions refused a one-token greedy completion ({e})") from None
        pairs = [(p, g) for p, g in zip(PROBES, gens, strict=True) if g[0].strip()]
        echoed = self.score([p for p, _ in pairs], [g for _, (g, _) in pairs]) if pairs else []
        compared = 0
        for (probe, (tok, lp)), s in zip(pairs, echoed, strict=True):
            if s.tokens != (tok,):
                continue  # the tokenizer merged the token with the text before it: not comparable
            compared += 1
            if abs(s.logprobs[0] - lp) > SELF_CHECK_TOL:
                raise self._error(
                    f"self-check failed: after {probe!r} the server generates {tok!r} with log-prob {lp:.3f} "
                    f"but its echo scores that token {s.logprobs[0]:.3f} nats (echoed log-probs shifted or "
                    f"wrong, as llama-cpp-python's are: its bug #1983); this server cannot score")
        if not compared:
            raise self._error("self-check inconclusive: no probe's generated token could be found in the echo")

    # ---- generation -------------------------------------------------------------------------------------------
    def generate(self, prompts: Sequence[str], max_new_tokens: int, stop: Sequence[str] = ()) -> list[Generation]:
        return self._continue(prompts, max_new_tokens, stop, NEUTRAL)

    def sample(self, prompts: Sequence[str], max_new_tokens: int, stop: Sequence[str] = (),
               temperature: float = 1.0, seeds: Sequence[int] = ()) -> list[Generation]:
        """One draw per prompt, sampled by the server at `temperature` with top_p 1 and no penalties, `seed` sent
        per request (prompts sharing a seed go in one request; a server that takes a list of prompts seeds each
        prompt alike, as vLLM does, so a draw depends on its prompt and seed only).

        Reproducible only where the server honours `seed`: vLLM does (per request); hosted OpenAI calls it best
        effort; servers that ignore it draw afresh each call. A server's draws are its own, never equal to the
        tiny or hf backend's for the same seed."""
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if seeds and len(seeds) != len(prompts):
            raise ValueError("seeds and prompts differ in length")
        row_seeds = list(seeds) or [0] * len(prompts)
        out: list[Generation | None] = [None] * len(prompts)
        for seed in dict.fromkeys(row_seeds):
            idx = [i for i, s in enumerate(row_seeds) if s == seed]
            gens = self._continue([prompts[i] for i in idx], max_new_tokens, stop,
                                  {**NEUTRAL, "temperature": temperature, "seed": int(seed)})
            for i, g in zip(idx, gens, strict=True):
                out[i] = g
        return [o for o in out if o is not None]

    def _continue(self, prompts: Sequence[str], max_new_tokens: int, stop: Sequence[str],
                  settings: dict[str, Any]) -> list[Generation]:
        """Continuations under `settings` (the neutral greedy ones, or a temperature and seed) from /completions, or
        /chat/completions on a chat-only server."""
        stops = [s for s in stop if s][:4]  # the OpenAI API takes at most four stop strings; the rest are cut here
        if not self._chat_only:
            body = {"model": self.spec.model, "max_tokens": max_new_tokens, "logprobs": 0, **settings,
                    **({"stop": stops} if stops else {})}
            try:
                return self._complete("/completions", body, prompts, lambda c, i: _generation(
                    c.get("text", ""), (c.get("logprobs") or {}).get("tokens"), stop))
            except _Refused as e:
                if e.status != 404:
                    raise self._error(f"/completions refused a prompt to continue ({e})") from None
                self._chat_only = True  # a chat-only API: no completions route

        def chat(prompt: str) -> Generation:
            def parse(d: dict[str, Any]) -> Generation:
                c = _choices(d, 1)[0]
                content = (c.get("logprobs") or {}).get("content")
                toks = [t.get("token", "") for t in content] if isinstance(content, list) else None
                return _generation((c.get("message") or {}).get("content") or "", toks, stop)

            try:
                return self._post("/chat/completions", {
                    "model": self.spec.model, "messages": [{"role": "user", "content": prompt}],
                    "max_tokens": max_new_tokens, "logprobs": True, **settings,
                    **({"stop": stops} if stops else {})}, parse)
            except _Refused as e:
                raise self._error(f"/chat/completions: {e}") from None

        if self.concurrency <= 1 or len(prompts) <= 1:
            return [chat(p) for p in prompts]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(chat, prompts))


def _named_extras(message: str, sent: dict[str, Any]) -> list[str]:
    """The non-standard fields of the request `sent` that a server's error message names."""
    return [k for k in NEUTRAL_EXTRA if k in sent and re.search(rf"\b{k}\b", message)]


def _choices(data: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """The `n` choices in prompt order; a batch answered with another count is a refused batch (some servers
    silently answer the first prompt only), a single prompt answered without one a malformed reply."""
    choices = sorted((c for c in data["choices"] if isinstance(c, dict)), key=lambda c: c.get("index", 0))
    if len(choices) != n:
        if n > 1:
            raise _Refused(200, f"{len(choices)} choices for {n} prompts")
        raise _Transient(f"{len(choices)} choices for 1 prompt")
    return choices


def _continuation_scores(choice: dict[str, Any], start: int, end: int) -> TokenScores:
    """The echoed tokens whose text starts in [start, end): the continuation, without the 1 generated token."""
    lp = choice.get("logprobs")
    need = ("tokens", "token_logprobs", "text_offset")
    if not isinstance(lp, dict) or any(not isinstance(lp.get(k), list) for k in need):
        raise _Transient("no echoed log-probs in the reply (scoring needs echo=True with logprobs on "
                         "/completions: vLLM has it; llama-server, TGI's OpenAI routes and chat-only APIs do not)")
    top = lp.get("top_logprobs") or [None] * len(lp["tokens"])
    tokens, logprobs, greedy = [], [], []
    for tok, tlp, off, alts in zip(lp["tokens"], lp["token_logprobs"], lp["text_offset"], top, strict=False):
        if not isinstance(off, int) or not start <= off < end:
            continue
        if not isinstance(tlp, int | float) or not math.isfinite(tlp) or tlp > 1e-4:
            raise _Transient(f"echoed log-prob {tlp!r} for continuation token {tok!r} is not a log-probability")
        tokens.append(str(tok))
        logprobs.append(float(tlp))
        # the token is the argmax when no alternative beats it (ties count as greedy, as in lm-eval)
        greedy.append(isinstance(alts, dict) and bool(alts) and max(alts.values()) <= float(tlp) + 1e-9)
    if not tokens and end > start:
        raise _Transient(f"the echo has no token at text offsets {start}..{end - 1} (the continuation)")
    return TokenScores(tuple(logprobs), tuple(greedy), tuple(tokens))


def _generated_logprob(choice: dict[str, Any]) -> tuple[str, float]:
    """(text, log-prob in nats) of the one token a `max_tokens=1, logprobs=1` completion generated."""
    lp = choice.get("logprobs")
    toks = lp.get("tokens") if isinstance(lp, dict) else None
    vals = lp.get("token_logprobs") if isinstance(lp, dict) else None
    if not isinstance(toks, list) or not isinstance(vals, list) or len(toks) != 1 or len(vals) != 1:
        raise _Transient("no log-prob for the generated token (logprobs=1 on /completions)")
    if not isinstance(vals[0], int | float) or not math.isfinite(vals[0]) or vals[0] > 1e-4:
        raise _Transient(f"generated token's log-prob {vals[0]!r} is not a log-probability")
    return str(toks[0]), float(vals[0])


def _generation(text: str, tokens: list[str] | None, stop: Sequence[str]) -> Generation:
    """Cut at the stop strings; token strings come from the server, or characters when it sends none."""
    cut, _ = cut_at_stop(text, stop)
    if tokens is None:
        return Generation(cut, tuple(cut))
    kept, at = [], 0
    for t in tokens:
        if at >= len(cut):
            break
        kept.append(t)
        at += len(t)
    return Generation(cut, tuple(kept))


def _retry_after(r: httpx.Response) -> float | None:
    """The Retry-After header in seconds (given as seconds or as an HTTP date), None when absent or unreadable."""
    value = r.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _server_message(r: httpx.Response) -> str:
    """The error message of an OpenAI-style error body, else the start of the body (secrets not yet scrubbed)."""
    try:
        err = r.json().get("error")
        msg = err.get("message") if isinstance(err, dict) else err
        return str(msg or r.text)[:300]
    except (ValueError, AttributeError):
        return r.text[:300]
