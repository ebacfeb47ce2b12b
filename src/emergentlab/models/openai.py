"""The `openai` backend: any OpenAI-compatible server (vLLM, llama.cpp server, TGI, hosted APIs).

Scoring asks the completions endpoint to echo the prompt with log-probs (`echo=True, logprobs=1, max_tokens=1`, the
request lm-eval makes) and keeps the tokens whose text offset lies inside the continuation. Generation uses the
completions endpoint (few-shot prompts are raw text, not chat turns) and falls back to chat completions when the
server has no completions endpoint. Requests are batched, run at most `max_concurrency` at a time, and retried
with exponential backoff on 429, 5xx, timeouts and dropped connections; anything else fails at once with the
server's own message. The API key is read from an environment variable when the backend is built and is only ever
sent in the Authorization header: it is not part of `name`, `facts()` or any repr.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import httpx
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from emergentlab.errors import UserError
from emergentlab.models.base import Generation, TokenScores, cut_at_stop
from emergentlab.records import ScaleFacts

DEFAULT_KEY_ENV = "OPENAI_API_KEY"


class _Transient(Exception):
    """A failure worth retrying: rate limit, server error, timeout, dropped connection."""


@dataclass(frozen=True)
class OpenAISpec:
    """`MODEL@BASE_URL[#ENV]`: the served model's name, the API root (ending in /v1), the key's variable name."""

    model: str
    base_url: str
    key_env: str = DEFAULT_KEY_ENV


def parse_openai_spec(rest: str) -> OpenAISpec:
    """Parse the part after `openai:`, e.g. `smol@http://127.0.0.1:8000/v1#MY_KEY`.

    The model name may itself hold `@` (the last `@` before `http` separates it from the URL).
    """
    url_at = max(rest.rfind("@http://"), rest.rfind("@https://"))
    if url_at <= 0:
        raise UserError(f"{rest!r}: expected MODEL@http(s)://HOST[:PORT]/v1[#KEY_ENV_VAR]", field="model")
    model, url = rest[:url_at], rest[url_at + 1:]
    url, _, env = url.partition("#")
    parsed = urlparse(url)
    if not parsed.netloc:
        raise UserError(f"{url!r} is not a URL with a host", field="model")
    if env and not env.replace("_", "").isalnum():
        raise UserError(f"{env!r} is not an environment variable name", field="model")
    return OpenAISpec(model, url.rstrip("/"), env or DEFAULT_KEY_ENV)


class OpenAIBackend:
    """Scores and generates through an OpenAI-compatible HTTP API.

    `batch_size` prompts go in one request; `max_concurrency` requests are in flight at most; a request is tried
    `max_attempts` times with random exponential backoff (`backoff_s` × 2^attempt, capped at `max_backoff_s`
    seconds) and a `timeout_s` second timeout per try.
    """

    def __init__(self, spec: OpenAISpec, name: str | None = None, *, api_key: str | None = None,
                 batch_size: int = 16, max_concurrency: int = 4, max_attempts: int = 5, backoff_s: float = 1.0,
                 max_backoff_s: float = 30.0, timeout_s: float = 120.0) -> None:
        self.spec, self.name = spec, name or spec.model
        self.batch_size, self.max_concurrency, self.max_attempts = batch_size, max_concurrency, max_attempts
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=spec.base_url, headers=headers, timeout=timeout_s,
                                    limits=httpx.Limits(max_connections=max_concurrency))
        self._chat_only = False

    @classmethod
    def from_spec(cls, rest: str, name: str | None = None, **kw: Any) -> OpenAIBackend:
        """A backend for `openai:<rest>`; the key comes from the variable the spec names (or OPENAI_API_KEY)."""
        spec = parse_openai_spec(rest)
        return cls(spec, name, api_key=os.environ.get(spec.key_env), **kw)

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.spec.model!r}, base_url={self.spec.base_url!r})"

    def close(self) -> None:
        self._client.close()

    def facts(self) -> ScaleFacts:
        """A server tells nothing of its model's scale: give params / tokens / loss in the study file."""
        return ScaleFacts(extra={"base_url": self.spec.base_url, "served_model": self.spec.model})

    # ---- HTTP -------------------------------------------------------------------------------------------------
    def _post_once(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            r = self._client.post(path, json=body)
        except (httpx.TimeoutException, httpx.TransportError) as e:
            raise _Transient(f"{type(e).__name__}: {e}") from e
        if r.status_code == 429 or r.status_code >= 500:
            raise _Transient(f"HTTP {r.status_code}: {r.text[:200]}")
        if r.status_code >= 400:
            raise UserError(f"HTTP {r.status_code} from {path}: {_server_message(r)}", source=self.spec.base_url,
                            field="model")
        data = r.json()
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise UserError(f"{path} answered without a 'choices' list", source=self.spec.base_url, field="model")
        return data

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        retrying = Retrying(stop=stop_after_attempt(self.max_attempts),
                            wait=wait_random_exponential(multiplier=self.backoff_s, max=self.max_backoff_s),
                            retry=retry_if_exception_type(_Transient), reraise=False)
        try:
            return retrying(self._post_once, path, body)
        except RetryError as e:
            last = e.last_attempt.exception()
            raise UserError(f"{path} failed {self.max_attempts} times, last: {last}", source=self.spec.base_url,
                            field="model") from None

    def _map(self, fn: Any, chunks: list[Any]) -> list[Any]:
        if len(chunks) <= 1 or self.max_concurrency <= 1:
            return [fn(c) for c in chunks]
        with ThreadPoolExecutor(self.max_concurrency) as pool:
            return list(pool.map(fn, chunks))

    def _chunks(self, n: int) -> list[range]:
        return [range(i, min(i + self.batch_size, n)) for i in range(0, n, self.batch_size)]

    # ---- scoring ----------------------------------------------------------------------------------------------
    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[TokenScores]:
        if len(prompts) != len(continuations):
            raise ValueError("prompts and continuations differ in length")

        def run(idx: range) -> list[TokenScores]:
            texts = [prompts[i] + continuations[i] for i in idx]
            data = self._post("/completions", {"model": self.spec.model, "prompt": texts, "max_tokens": 1,
                                               "temperature": 0, "echo": True, "logprobs": 1})
            choices = sorted(data["choices"], key=lambda c: c.get("index", 0))
            if len(choices) != len(texts):
                raise UserError(f"/completions returned {len(choices)} choices for {len(texts)} prompts",
                                source=self.spec.base_url, field="model")
            return [self._continuation_scores(c, len(prompts[i]), len(texts[k]))
                    for k, (i, c) in enumerate(zip(idx, choices, strict=True))]

        return [s for part in self._map(run, self._chunks(len(prompts))) for s in part]

    def _continuation_scores(self, choice: dict[str, Any], start: int, end: int) -> TokenScores:
        """The echoed tokens whose text starts in [start, end): the continuation, without the 1 generated token."""
        lp = choice.get("logprobs")
        need = ("tokens", "token_logprobs", "text_offset")
        if not isinstance(lp, dict) or any(not isinstance(lp.get(k), list) for k in need):
            raise UserError("the server returned no echoed log-probs (it must support echo=True with logprobs on "
                            "/completions to score; vLLM and llama.cpp server do, chat-only APIs do not)",
                            source=self.spec.base_url, field="model")
        top = lp.get("top_logprobs") or [None] * len(lp["tokens"])
        tokens, logprobs, greedy = [], [], []
        for tok, tlp, off, alts in zip(lp["tokens"], lp["token_logprobs"], lp["text_offset"], top, strict=False):
            if not start <= off < end:
                continue
            if tlp is None:
                raise UserError("the server gave no log-prob for a continuation token", source=self.spec.base_url,
                                field="model")
            tokens.append(tok)
            logprobs.append(float(tlp))
            # the token is the argmax when no alternative beats it (ties count as greedy, as in lm-eval)
            greedy.append(bool(alts) and max(alts.values()) <= float(tlp) + 1e-9 if isinstance(alts, dict)
                          else False)
        return TokenScores(tuple(logprobs), tuple(greedy), tuple(tokens))

    # ---- generation -------------------------------------------------------------------------------------------
    def generate(self, prompts: Sequence[str], max_new_tokens: int, stop: Sequence[str] = ()) -> list[Generation]:
        stops = [s for s in stop if s][:4]  # the OpenAI API takes at most four stop strings; the rest are cut here

        def run(idx: range) -> list[Generation]:
            if not self._chat_only:
                body = {"model": self.spec.model, "prompt": [prompts[i] for i in idx], "max_tokens": max_new_tokens,
                        "temperature": 0, "logprobs": 0, **({"stop": stops} if stops else {})}
                try:
                    data = self._post("/completions", body)
                    choices = sorted(data["choices"], key=lambda c: c.get("index", 0))
                    return [self._generation(c.get("text", ""), (c.get("logprobs") or {}).get("tokens"), stop)
                            for c in choices]
                except UserError as e:
                    if "HTTP 404" not in str(e):
                        raise
                    self._chat_only = True
            return [self._chat(prompts[i], max_new_tokens, stops, stop) for i in idx]

        return [g for part in self._map(run, self._chunks(len(prompts))) for g in part]

    def _chat(self, prompt: str, max_new_tokens: int, stops: list[str], stop: Sequence[str]) -> Generation:
        data = self._post("/chat/completions", {
            "model": self.spec.model, "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_new_tokens, "temperature": 0, "logprobs": True, **({"stop": stops} if stops else {})})
        c = data["choices"][0]
        content = (c.get("logprobs") or {}).get("content")
        toks = [t.get("token", "") for t in content] if isinstance(content, list) else None
        return self._generation((c.get("message") or {}).get("content") or "", toks, stop)

    @staticmethod
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


def _server_message(r: httpx.Response) -> str:
    try:
        err = r.json().get("error")
        msg = err.get("message") if isinstance(err, dict) else err
        return str(msg or r.text)[:300].replace("\n", " ")
    except (ValueError, AttributeError):
        return r.text[:300].replace("\n", " ")
