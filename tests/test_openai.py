"""The openai backend against a small OpenAI-compatible server on 127.0.0.1, backed by the tiny model.

The server scores and generates with a `TinyBackend` (one token per character), so the backend's answers can be
checked against the tiny backend called directly. It serves on an ephemeral port, answers at most a bounded number
of requests, and is shut down by the fixture (and by a timer, should a test hang).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import torch

from emergentlab.errors import UserError
from emergentlab.models.openai import OpenAIBackend, parse_openai_spec
from emergentlab.models.tiny import PAD, TinyBackend

MAX_REQUESTS = 400


@dataclass
class Behaviour:
    """What the fake server does: fail the first `fail_first` requests with `fail_status` (0 = hang past the
    client's timeout), leave out log-probs, or refuse /completions (a chat-only server)."""

    fail_first: int = 0
    fail_status: int = 429
    no_logprobs: bool = False
    chat_only: bool = False
    delay_s: float = 0.0
    seen: list[dict[str, Any]] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _echo(tiny: TinyBackend, text: str) -> dict[str, Any]:
    """OpenAI-style echo log-probs of every character of `text` (the first has none), with the top-1 alternative."""
    ids = torch.tensor([[PAD, *tiny.tok.encode(text)]])
    with torch.inference_mode():
        logp = tiny.model(ids)[0, :-1].float().log_softmax(-1)
    tgt = ids[0, 1:]
    lps = logp.gather(1, tgt[:, None]).squeeze(1).tolist()
    best = logp.argmax(-1).tolist()
    top = [{chr(b): logp[i, b].item()} for i, b in enumerate(best)]
    return {"tokens": list(text), "token_logprobs": [None, *lps[1:]], "text_offset": list(range(len(text))),
            "top_logprobs": [None, *top[1:]]}


def make_handler(tiny: TinyBackend, b: Behaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, obj: dict[str, Any]) -> None:
            raw = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with b.lock:
                b.seen.append({"path": self.path, **body})
                b.auth.append(self.headers.get("Authorization"))
                n = len(b.seen)
                b.in_flight += 1
                b.max_in_flight = max(b.max_in_flight, b.in_flight)
            try:
                if n > MAX_REQUESTS:
                    return self._send(503, {"error": "request budget of the test server spent"})
                time.sleep(b.delay_s)
                if n <= b.fail_first:
                    if b.fail_status == 0:
                        time.sleep(1.0)  # longer than the client's timeout
                        return None
                    return self._send(b.fail_status, {"error": {"message": "try later"}})
                if self.path == "/v1/completions":
                    if b.chat_only:
                        return self._send(404, {"error": {"message": "no such route"}})
                    return self._completions(body)
                if self.path == "/v1/chat/completions":
                    text = tiny.generate([body["messages"][-1]["content"]], body["max_tokens"],
                                         body.get("stop", ()))[0].text
                    return self._send(200, {"choices": [{"index": 0, "message": {"role": "assistant",
                                                                                  "content": text}}]})
                return self._send(404, {"error": {"message": f"unknown path {self.path}"}})
            finally:
                with b.lock:
                    b.in_flight -= 1

        def _completions(self, body: dict[str, Any]) -> None:
            prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
            choices = []
            for i, p in enumerate(prompts):
                gen = tiny.generate([p], body["max_tokens"], body.get("stop", ()))[0].text
                choice: dict[str, Any] = {"index": i, "text": gen}
                if body.get("echo") and not b.no_logprobs:
                    lp = _echo(tiny, p + gen)
                    choice = {"index": i, "text": p + gen, "logprobs": lp}
                elif body.get("logprobs") is not None and not b.no_logprobs:
                    choice["logprobs"] = {"tokens": list(gen)}
                choices.append(choice)
            self._send(200, {"choices": choices[::-1]})  # out of order on purpose: the client sorts by index

    return Handler


@pytest.fixture(scope="module")
def tiny(tiny_ckpt: Path) -> TinyBackend:
    return TinyBackend.from_path(tiny_ckpt)


@pytest.fixture
def server(tiny: TinyBackend) -> Iterator[tuple[str, Behaviour]]:
    b = Behaviour()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(tiny, b))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    guard = threading.Timer(60.0, httpd.shutdown)  # a hung test still stops the server
    guard.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", b
    finally:
        guard.cancel()
        httpd.shutdown()
        httpd.server_close()


def backend(url: str, **kw: Any) -> OpenAIBackend:
    return OpenAIBackend(parse_openai_spec(f"tiny@{url}"), **{"backoff_s": 0.01, "max_backoff_s": 0.05, **kw})


PROMPTS = ["12+34=", "Q: 7*8\nA:", "hello", "a b c "]
CONTS = ["46", " 56", " world", "d e"]


def test_scores_match_the_model_behind_the_server(server: tuple[str, Behaviour], tiny: TinyBackend) -> None:
    url, b = server
    got = backend(url, batch_size=3).score(PROMPTS, CONTS)
    want = tiny.score(PROMPTS, CONTS)
    for g, w, c in zip(got, want, CONTS, strict=True):
        assert g.tokens == tuple(c)
        assert g.logprobs == pytest.approx(w.logprobs, abs=1e-5)
        assert g.greedy == w.greedy
    # 4 items in batches of 3: two requests, each echoing with log-probs
    assert [(s["path"], len(s["prompt"]), s["echo"]) for s in b.seen] == [("/v1/completions", 3, True),
                                                                            ("/v1/completions", 1, True)]


def test_generate_uses_completions_and_cuts_at_stop(server: tuple[str, Behaviour], tiny: TinyBackend) -> None:
    url, b = server
    got = backend(url).generate(PROMPTS, 6, stop=["\n"])
    want = tiny.generate(PROMPTS, 6, stop=["\n"])
    assert [g.text for g in got] == [w.text for w in want]
    assert all(g.tokens == tuple(g.text) for g in got)
    assert {s["path"] for s in b.seen} == {"/v1/completions"}


def test_chat_only_server_generates_through_chat(server: tuple[str, Behaviour], tiny: TinyBackend) -> None:
    url, b = server
    b.chat_only = True
    got = backend(url, max_concurrency=1).generate(PROMPTS[:2], 5)
    assert [g.text for g in got] == [w.text for w in tiny.generate(PROMPTS[:2], 5)]
    assert [s["path"] for s in b.seen] == ["/v1/completions", "/v1/chat/completions", "/v1/chat/completions"]


def test_server_without_logprobs_is_a_clear_user_error(server: tuple[str, Behaviour]) -> None:
    url, b = server
    b.no_logprobs = True
    with pytest.raises(UserError, match="no echoed log-probs") as e:
        backend(url).score(PROMPTS[:1], CONTS[:1])
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_failures_are_retried(server: tuple[str, Behaviour], status: int, tiny: TinyBackend) -> None:
    url, b = server
    b.fail_first, b.fail_status = 2, status
    got = backend(url).score(PROMPTS[:1], CONTS[:1])
    assert got[0].logprobs == pytest.approx(tiny.score(PROMPTS[:1], CONTS[:1])[0].logprobs, abs=1e-5)
    assert len(b.seen) == 3


def test_timeouts_are_retried(server: tuple[str, Behaviour]) -> None:
    url, b = server
    b.fail_first, b.fail_status = 1, 0
    assert len(backend(url, timeout_s=0.3).score(PROMPTS[:1], CONTS[:1])[0].logprobs) == len(CONTS[0])
    assert len(b.seen) == 2


def test_retries_are_bounded(server: tuple[str, Behaviour]) -> None:
    url, b = server
    b.fail_first = 10**6
    with pytest.raises(UserError, match="failed 3 times.*HTTP 429"):
        backend(url, max_attempts=3).score(PROMPTS[:1], CONTS[:1])
    assert len(b.seen) == 3


def test_client_errors_are_not_retried(server: tuple[str, Behaviour]) -> None:
    url, b = server
    b.fail_first, b.fail_status = 1, 400
    with pytest.raises(UserError, match="HTTP 400.*try later"):
        backend(url).score(PROMPTS[:1], CONTS[:1])
    assert len(b.seen) == 1


def test_concurrency_is_limited(server: tuple[str, Behaviour]) -> None:
    url, b = server
    b.delay_s = 0.05
    backend(url, batch_size=1, max_concurrency=2).score(PROMPTS * 2, CONTS * 2)
    assert len(b.seen) == 8
    assert b.max_in_flight == 2


def test_key_comes_from_the_named_variable_and_is_never_exposed(server: tuple[str, Behaviour],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    url, b = server
    monkeypatch.setenv("EL_TEST_KEY", "sk-secret-123")
    be = OpenAIBackend.from_spec(f"tiny@{url}#EL_TEST_KEY", "rung")
    be.score(PROMPTS[:1], CONTS[:1])
    assert b.auth == ["Bearer sk-secret-123"]
    assert "sk-secret" not in repr(be) + repr(be.facts()) + be.name
    assert be.facts().params is None


def test_spec_parsing() -> None:
    s = parse_openai_spec("org/model@v2@https://api.example.com/v1/#MY_KEY")
    assert (s.model, s.base_url, s.key_env) == ("org/model@v2", "https://api.example.com/v1", "MY_KEY")
    assert parse_openai_spec("m@http://127.0.0.1:8000/v1").key_env == "OPENAI_API_KEY"
    for bad in ("model-without-url", "m@ftp://host/v1", "m@http:///v1", "m@http://h/v1#BAD-NAME"):
        with pytest.raises(UserError):
            parse_openai_spec(bad)
