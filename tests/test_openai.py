"""The openai backend against small OpenAI-compatible servers on 127.0.0.1.

The live fake server scores and generates with a `TinyBackend` (one token per character), so the backend's answers
can be checked against the tiny backend called directly; it can inject faults, refuse batches and shift its echo
as llama-cpp-python does. The replay server answers from responses recorded in tests/data/openai/. Every server
serves on an ephemeral port, answers a bounded number of requests and is shut down by its fixture (and by a timer,
should a test hang).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import torch

from emergentlab.errors import UserError
from emergentlab.models import openai as oa
from emergentlab.models.openai import PROBES, OpenAIBackend, parse_openai_spec, redact_spec, redact_url
from emergentlab.models.tiny import PAD, TinyBackend
from emergentlab.runner import run_study
from emergentlab.store import Store
from emergentlab.study import parse_study

MAX_REQUESTS = 400
DATA = Path(__file__).parent / "data" / "openai"
FAULTS = ("500", "429", "timeout", "truncated", "no_logprobs")


@dataclass
class Behaviour:
    """What the fake server does: fail the first `fail_first` requests with `fail_status` (0 = hang past the
    client's timeout), inject a fault (each kind of FAULTS in turn) into a `fault_rate` share of requests (never
    more than twice in a row for the same request), refuse batches with HTTP 500 and shift the echo
    (llama-cpp-python), refuse top_k -1 with a 500 naming the field (llama-cpp-python's validation), leave out
    log-probs, or refuse /completions (a chat-only server)."""

    fail_first: int = 0
    fail_status: int = 429
    fail_body: str = "try later"
    retry_after: str | None = None
    fault_rate: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    one_prompt: bool = False
    shifted: bool = False
    strict_top_k: bool = False
    standard_only: bool = False
    no_logprobs: bool = False
    chat_only: bool = False
    delay_s: float = 0.0
    hang_s: float = 1.5  # how long a "timeout" lasts: longer than the client's timeout
    seen: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    streak: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _logprobs(tiny: TinyBackend, text: str, start: int, shifted: bool = False) -> dict[str, Any]:
    """OpenAI-style log-probs of the characters of `text` from `start` on (the very first character has none), with
    the top-1 alternative. `shifted` gives llama-cpp-python's: entry i is log p(char i | chars <= i)."""
    ids = torch.tensor([[PAD, *tiny.tok.encode(text)]])
    with torch.inference_mode():
        logp = tiny.model(ids)[0].float().log_softmax(-1)  # row j predicts character j (row 0 after PAD only)
    rows = logp[1:] if shifted else logp[:-1]
    tgt = ids[0, 1:]
    lps = rows.gather(1, tgt[:, None]).squeeze(1).tolist()
    top = [{chr(b): rows[i, b].item()} for i, b in enumerate(rows.argmax(-1).tolist())]
    lp: list[float | None] = [None, *lps[1:]]
    tp: list[dict[str, float] | None] = [None, *top[1:]]
    return {"tokens": list(text[start:]), "token_logprobs": lp[start:], "text_offset": list(range(start, len(text))),
            "top_logprobs": tp[start:]}


def make_handler(tiny: TinyBackend, b: Behaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        inside = False  # this request counts in `b.in_flight`

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, obj: dict[str, Any], cut: bool = False, retry_after: str | None = None) -> None:
            raw = json.dumps(obj).encode()
            raw = raw[: len(raw) // 2] if cut else raw
            self._leave()  # before answering: the client may send its next request as soon as it reads this
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            if retry_after is not None:
                self.send_header("Retry-After", retry_after)
            self.end_headers()
            self.wfile.write(raw)

        def _leave(self) -> None:
            with b.lock:
                if self.inside:
                    self.inside = False
                    b.in_flight -= 1

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            self.inside = True
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            body = json.loads(raw)
            with b.lock:
                b.seen.append({"path": self.path, **body})
                b.headers.append(dict(self.headers))
                n = len(b.seen)
                b.in_flight += 1
                b.max_in_flight = max(b.max_in_flight, b.in_flight)
                fault = None
                if b.fault_rate and b.rng.random() < b.fault_rate and b.streak[raw.decode()] < 2:
                    fault = FAULTS[sum(b.faults.values()) % len(FAULTS)]  # each kind in turn
                    b.faults[fault] += 1
                b.streak[raw.decode()] = b.streak[raw.decode()] + 1 if fault else 0
            try:
                if n > MAX_REQUESTS:
                    return self._send(503, {"error": "request budget of the test server spent"})
                time.sleep(b.delay_s)
                if n <= b.fail_first:
                    if b.fail_status == 0:
                        time.sleep(b.hang_s)
                        return None
                    return self._send(b.fail_status, {"error": {"message": b.fail_body}}, retry_after=b.retry_after)
                if fault == "timeout":
                    time.sleep(b.hang_s)
                    return None
                if fault in ("500", "429"):
                    return self._send(int(fault), {"error": {"message": "injected"}}, retry_after="0")
                route = urlsplit(self.path).path
                if route == "/v1/completions":
                    if b.chat_only:
                        return self._send(404, {"error": {"message": "no such route"}})
                    unknown = sorted(set(body) & set(oa.NEUTRAL_EXTRA)) if b.standard_only else []
                    if unknown:  # as hosted OpenAI words it
                        return self._send(400, {"error": {"message": "Unrecognized request arguments supplied: "
                                                          + ", ".join(unknown), "type": "invalid_request_error"}})
                    if b.strict_top_k and body.get("top_k", 0) < 0:  # as llama-cpp-python 0.3.36 words it
                        return self._send(500, {"error": {"message": "1 validation error: {'type': "
                                                          "'greater_than_equal', 'loc': ('body', 'top_k'), 'msg': "
                                                          "'Input should be greater than or equal to 0', 'input': -1}",
                                                          "type": "internal_server_error"}})
                    if b.one_prompt and isinstance(body["prompt"], list) and len(body["prompt"]) > 1:
                        return self._send(500, {"error": {"message": "", "type": "internal_server_error"}})
                    return self._completions(body, drop_logprobs=b.no_logprobs or fault == "no_logprobs",
                                             cut=fault == "truncated")
                if route == "/v1/chat/completions":
                    text = tiny.generate([body["messages"][-1]["content"]], body["max_tokens"],
                                         body.get("stop", ()))[0].text
                    return self._send(200, {"choices": [{"index": 0, "message": {"role": "assistant",
                                                                                  "content": text}}]})
                return self._send(404, {"error": {"message": f"unknown path {self.path}"}})
            finally:
                self._leave()

        def _completions(self, body: dict[str, Any], drop_logprobs: bool, cut: bool) -> None:
            prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
            choices = []
            if body.get("temperature", 0) > 0:  # sampling: each prompt's draw from (prompt, seed), as vLLM seeds
                gens = tiny.sample(prompts, body["max_tokens"], body.get("stop", ()), body["temperature"],
                                   [body["seed"]] * len(prompts))
            else:
                gens = tiny.generate(prompts, body["max_tokens"], body.get("stop", ()))
            for i, (p, g) in enumerate(zip(prompts, gens, strict=True)):
                gen = g.text
                choice: dict[str, Any] = {"index": i, "text": gen}
                if body.get("echo"):
                    choice["text"] = p + gen
                if body.get("logprobs") is not None and not drop_logprobs:
                    choice["logprobs"] = _logprobs(tiny, p + gen, 0 if body.get("echo") else len(p),
                                                   b.shifted and bool(body.get("echo")))
                choices.append(choice)
            self._send(200, {"choices": choices[::-1]}, cut=cut)  # out of order on purpose: the client sorts

    return Handler


def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    guard = threading.Timer(60.0, httpd.shutdown)  # a hung test still stops the server
    guard.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        guard.cancel()
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def tiny(tiny_ckpt: Path) -> TinyBackend:
    return TinyBackend.from_path(tiny_ckpt)


@pytest.fixture
def server(tiny: TinyBackend) -> Iterator[tuple[str, Behaviour]]:
    b = Behaviour()
    for url in _serve(make_handler(tiny, b)):
        yield url, b


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oa, "BACKOFF_S", 0.01)
    monkeypatch.setattr(oa, "MAX_BACKOFF_S", 0.05)


def backend(url: str, **kw: Any) -> OpenAIBackend:
    return OpenAIBackend(parse_openai_spec(f"tiny@{url}"), **{"backoff_s": 0.01, "max_backoff_s": 0.05, **kw})


def _n(prompt: str | list[str]) -> int:
    """Prompts in a request: a list, or one string."""
    return len(prompt) if isinstance(prompt, list) else 1


PROMPTS = ["12+34=", "Q: 7*8\nA:", "hello", "a b c "]
CONTS = ["46", " 56", " world", "d e"]


def test_scores_match_the_model_behind_the_server(server: tuple[str, Behaviour], tiny: TinyBackend) -> None:
    url, b = server
    got = backend(url, max_batch=3).score(PROMPTS, CONTS)
    want = tiny.score(PROMPTS, CONTS)
    for g, w, c in zip(got, want, CONTS, strict=True):
        assert g.tokens == tuple(c)
        assert g.logprobs == pytest.approx(w.logprobs, abs=1e-5)
        assert g.greedy == w.greedy
    # 4 items in batches of 3: two requests, each echoing with log-probs, sent concurrently (in either order)
    assert Counter((s["path"], _n(s["prompt"]), s["echo"]) for s in b.seen) == Counter(
        [("/v1/completions", 3, True), ("/v1/completions", 1, True)])
    assert all(s["temperature"] == 0 and s["repeat_penalty"] == 1.0 and s["top_p"] == 1 for s in b.seen)


def test_generate_uses_completions_greedily_and_cuts_at_stop(server: tuple[str, Behaviour], tiny: TinyBackend) -> None:
    url, b = server
    got = backend(url).generate(PROMPTS, 6, stop=["\n"])
    want = tiny.generate(PROMPTS, 6, stop=["\n"])
    assert [g.text for g in got] == [w.text for w in want]
    assert all(g.tokens == tuple(g.text) for g in got)
    assert {s["path"] for s in b.seen} == {"/v1/completions"}
    neutral = {"temperature": 0, "top_p": 1, "frequency_penalty": 0, "presence_penalty": 0, "repeat_penalty": 1.0,
               "repetition_penalty": 1.0}
    assert all(s.items() >= neutral.items() for s in b.seen)


def test_sample_sends_the_temperature_and_each_seed(server: tuple[str, Behaviour], tiny: TinyBackend) -> None:
    url, b = server
    seeds = [5, 9, 5, 9]
    got = backend(url).sample(PROMPTS, 6, ["\n"], 0.8, seeds)
    assert [g.text for g in got] == [w.text for w in tiny.sample(PROMPTS, 6, ["\n"], 0.8, seeds)]
    # prompts sharing a seed travel together, one request per seed; sampling is pure temperature
    assert sorted((s["seed"], _n(s["prompt"])) for s in b.seen) == [(5, 2), (9, 2)]
    assert all(s["temperature"] == 0.8 and s["top_p"] == 1 and s["top_k"] == -1 and s["min_p"] == 0
               and s["repeat_penalty"] == 1.0 for s in b.seen)
    with pytest.raises(ValueError, match="temperature"):
        backend(url).sample(PROMPTS, 6, (), -0.5)


def test_chat_only_server_generates_through_chat(server: tuple[str, Behaviour], tiny: TinyBackend) -> None:
    url, b = server
    b.chat_only = True
    got = backend(url, concurrency=1).generate(PROMPTS[:2], 5)
    assert [g.text for g in got] == [w.text for w in tiny.generate(PROMPTS[:2], 5)]
    assert [s["path"] for s in b.seen] == ["/v1/completions", "/v1/chat/completions", "/v1/chat/completions"]


def test_server_without_logprobs_is_a_clear_user_error(server: tuple[str, Behaviour]) -> None:
    url, b = server
    b.no_logprobs = True
    with pytest.raises(UserError, match="no echoed log-probs") as e:
        backend(url).score(PROMPTS[:1], CONTS[:1])
    assert "\n" not in str(e.value) and url in str(e.value)
    assert len(b.seen) == 5


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_failures_are_retried(server: tuple[str, Behaviour], status: int, tiny: TinyBackend) -> None:
    url, b = server
    b.fail_first, b.fail_status = 2, status
    got = backend(url).score(PROMPTS[:1], CONTS[:1])
    assert got[0].logprobs == pytest.approx(tiny.score(PROMPTS[:1], CONTS[:1])[0].logprobs, abs=1e-5)
    assert len(b.seen) == 3


def test_retry_after_is_honoured(server: tuple[str, Behaviour]) -> None:
    url, b = server
    b.fail_first, b.fail_status, b.retry_after = 1, 429, "1"
    t0 = time.perf_counter()
    backend(url).score(PROMPTS[:1], CONTS[:1])
    assert time.perf_counter() - t0 >= 1.0  # the backoff alone would wait at most 0.05 s
    assert len(b.seen) == 2


def test_timeouts_are_retried(server: tuple[str, Behaviour]) -> None:
    url, b = server
    b.fail_first, b.fail_status = 1, 0
    assert len(backend(url, timeout_s=1.0).score(PROMPTS[:1], CONTS[:1])[0].logprobs) == len(CONTS[0])
    assert len(b.seen) == 2


def test_retries_are_bounded_and_name_the_server_and_rung(server: tuple[str, Behaviour]) -> None:
    url, b = server
    b.fail_first, b.fail_status = 10**6, 0
    t0 = time.perf_counter()
    with pytest.raises(UserError, match=r"rung 'r1'.*failed 3 times \(timeout 0.2 s per try.*ReadTimeout") as e:
        OpenAIBackend(parse_openai_spec(f"tiny@{url}"), "r1", timeout_s=0.2, max_attempts=3,
                      backoff_s=0.01).score(PROMPTS[:1], CONTS[:1])
    assert str(e.value).startswith(url)
    assert len(b.seen) == 3
    assert time.perf_counter() - t0 < 3


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_client_errors_are_not_retried(server: tuple[str, Behaviour], status: int) -> None:
    url, b = server
    b.fail_first, b.fail_status = 1, status
    with pytest.raises(UserError, match=f"HTTP {status}: try later"):
        backend(url).score(PROMPTS[:1], CONTS[:1])
    assert len(b.seen) == 1


def test_a_refused_batch_falls_back_to_one_prompt_per_request(server: tuple[str, Behaviour],
                                                                tiny: TinyBackend) -> None:
    url, b = server
    b.one_prompt, b.delay_s = True, 0.05
    be = backend(url, max_batch=4, concurrency=2)
    got = be.score(PROMPTS, CONTS)
    assert [g.logprobs for g in got] == [pytest.approx(w.logprobs, abs=1e-5) for w in tiny.score(PROMPTS, CONTS)]
    sizes = [_n(s["prompt"]) for s in b.seen]
    assert sizes == [4, 1, 1, 1, 1]  # the 500 on the batch is not retried; the rest go one by one
    assert [g.text for g in be.generate(PROMPTS, 4)] == [g.text for g in tiny.generate(PROMPTS, 4)]
    assert len(b.seen) == 9 and b.max_in_flight == 2  # later calls send one prompt per request, 2 at a time


def test_concurrency_is_limited(server: tuple[str, Behaviour]) -> None:
    url, b = server
    b.delay_s = 0.05
    backend(url, max_batch=1, concurrency=2).score(PROMPTS * 2, CONTS * 2)
    assert len(b.seen) == 8
    assert b.max_in_flight == 2


def test_self_check_passes_an_honest_server_and_refuses_a_shifted_echo(server: tuple[str, Behaviour],
                                                                       fast_backoff: None) -> None:
    url, b = server
    OpenAIBackend.from_spec(f"tiny@{url}", "ok")
    assert [_n(s["prompt"]) for s in b.seen] == [len(PROBES), len(PROBES)]  # generate, then echo
    b.shifted = True
    with pytest.raises(UserError, match=r"rung 'shifted'.*self-check failed.*#1983") as e:
        OpenAIBackend.from_spec(f"tiny@{url}", "shifted")
    assert str(e.value).startswith(url) and "\n" not in str(e.value)


def test_key_comes_from_the_named_variable_and_is_never_exposed(server: tuple[str, Behaviour],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    url, b = server
    monkeypatch.setenv("EL_TEST_KEY", "sk-secret-123")
    be = OpenAIBackend.from_spec(f"tiny@{url}#EL_TEST_KEY", "rung")
    be.score(PROMPTS[:1], CONTS[:1])
    assert {h["Authorization"] for h in b.headers} == {"Bearer sk-secret-123"}
    assert "sk-secret" not in repr(be) + repr(be.facts()) + be.name
    assert be.facts().params is None
    # a server that echoes the key (and the URL) in its error body: the message shows neither
    b.fail_first, b.fail_status, b.fail_body = len(b.seen) + 1, 401, "bad key sk-secret-123 for http://h/?key=sk-secret-123"
    with pytest.raises(UserError, match="bad key \\*\\*\\* for") as e:
        be.score(PROMPTS[:1], CONTS[:1])
    assert "sk-secret" not in str(e.value)


def test_secrets_in_the_url_are_sent_but_never_shown(server: tuple[str, Behaviour]) -> None:
    url, b = server
    secret_url = url.replace("http://", "http://me:pw-secret-9@") + "?api-key=qk-secret-7&api-version=2024"
    be = OpenAIBackend(parse_openai_spec(f"tiny@{secret_url}"), backoff_s=0.01)
    be.score(PROMPTS[:1], CONTS[:1])
    assert b.headers[0]["Authorization"].startswith("Basic ")  # user-info goes as Basic auth
    assert b.seen[0]["path"] == "/v1/completions?api-key=qk-secret-7&api-version=2024"
    shown = repr(be) + json.dumps(be.facts().extra)
    assert "secret" not in shown and "api-version=2024" in shown
    b.fail_first, b.fail_status, b.fail_body = 10**6, 400, "no: pw-secret-9 qk-secret-7"
    with pytest.raises(UserError) as e:
        be.score(PROMPTS[:1], CONTS[:1])
    assert "secret" not in str(e.value)


def test_redact_spec() -> None:
    assert redact_spec("openai:m@https://u:k1@api.example.com/v1?key=k2&api-version=3#ENV") == \
        "openai:m@https://***@api.example.com/v1?key=***&api-version=3#ENV"
    assert redact_url("http://h:8/v1?access_token=x&sig=y&model=z") == "http://h:8/v1?access_token=***&sig=***&model=z"
    for plain in ("tiny:/ckpt/a", "hf:org/name@rev", "openai:m@http://127.0.0.1:8000/v1#MY_KEY"):
        assert redact_spec(plain) == plain


def test_spec_parsing() -> None:
    s = parse_openai_spec("org/model@v2@https://api.example.com/v1/#MY_KEY")
    assert (s.model, s.base_url, s.key_env) == ("org/model@v2", "https://api.example.com/v1", "MY_KEY")
    assert parse_openai_spec("m@http://127.0.0.1:8000/v1").key_env == "OPENAI_API_KEY"
    for bad in ("model-without-url", "m@ftp://host/v1", "m@http:///v1", "m@http://h/v1#BAD-NAME"):
        with pytest.raises(UserError):
            parse_openai_spec(bad)
    with pytest.raises(UserError, match="study.toml: ladder\\[1\\].model") as e:
        parse_openai_spec("m@http://:KEY99@/v1", source="study.toml", field="ladder[1].model")
    assert "KEY99" not in str(e.value)


def _study(url: str, out: Path, **rung: Any) -> Any:
    return parse_study({"name": "srv", "seed": 3, "out": str(out), "batch_size": 8, "ladder": [
        {"name": "served", "model": f"openai:tiny@{url}", **rung}], "tasks": [
        {"generator": "add2", "n": 6, "shots": [0, 2]},
        {"generator": "add2", "name": "add2mc", "n": 4, "choices": 4}]}, "study.toml", out)


def test_study_fields_set_the_server_limits(tmp_path: Path) -> None:
    s = _study("http://127.0.0.1:9/v1", tmp_path, timeout_s=2.5, max_batch=1, concurrency=3)
    assert (s.ladder[0].server.timeout_s, s.ladder[0].server.max_batch, s.ladder[0].server.concurrency) == (2.5, 1, 3)
    for bad in ({"timeout_s": 0}, {"timeout_s": float("nan")}, {"max_batch": 1.5}, {"concurrency": True}):
        with pytest.raises(UserError, match=f"ladder\\[0\\].{next(iter(bad))}"):
            _study("http://127.0.0.1:9/v1", tmp_path, **bad)
    with pytest.raises(UserError, match="only openai: rungs take timeout_s"):
        parse_study({"ladder": [{"model": "hf:org/x", "timeout_s": 3}], "tasks": [{"generator": "add2"}]},
                    "study.toml", tmp_path)


def test_a_run_through_30_percent_faults_stores_the_same_records(tiny: TinyBackend, fast_backoff: None,
                                                                 tmp_path: Path) -> None:
    frames = []
    for rate in (0.0, 0.3):
        b = Behaviour(fault_rate=rate, rng=random.Random(11), hang_s=3.5)
        for url in _serve(make_handler(tiny, b)):
            # 3 s: a real answer takes ~0.05 s (1 s on a machine loaded 5-fold), an injected hang longer
            study = _study(url, tmp_path / f"run{rate}", timeout_s=3.0)
            with Store(study.store_path) as store:
                summary = run_study(study, store)
                frames.append(store.records("srv"))
                assert store.rungs("srv").spec.tolist() == [f"openai:tiny@{url}"]
        assert summary.written == summary.total == 16
        if rate:
            assert sum(b.faults.values()) >= 0.2 * len(b.seen) and set(b.faults) == set(FAULTS), b.faults
    assert frames[0].drop(columns="model").equals(frames[1].drop(columns="model"))


def _replay_handler(recorded: list[dict[str, Any]], seen: list[dict[str, Any]]) -> type[BaseHTTPRequestHandler]:
    """Answers a request with the recorded response whose request has the same prompt, echo and max_tokens; where
    several have, with each in the order recorded (the last one again once they are used up)."""

    def key(body: dict[str, Any]) -> str:
        return json.dumps([body.get("prompt"), bool(body.get("echo")), body.get("max_tokens")])

    table: dict[str, list[dict[str, Any]]] = {}
    for r in recorded:
        table.setdefault(key(r["request"]), []).append(r)

    class Replay(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            answers = table.get(key(body)) if len(seen) <= MAX_REQUESTS else None
            hit = (answers.pop(0) if len(answers) > 1 else answers[0]) if answers else None
            status, obj = (hit["status"], hit["response"]) if hit else (418, {"error": "not recorded"})
            raw = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    return Replay


def _fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text())
    return data


def test_a_llama_cpp_python_style_server_is_refused_by_the_self_check(server: tuple[str, Behaviour],
                                                                      tiny: TinyBackend, fast_backoff: None) -> None:
    url, b = server
    # llama-cpp-python 0.3.36: 500 naming top_k for -1, 500 on a list of prompts, echo shifted (#1983)
    b.one_prompt, b.shifted, b.strict_top_k = True, True, True
    with pytest.raises(UserError, match=r"self-check failed.*#1983") as e:
        OpenAIBackend.from_spec(f"smol@{url}", "smol")
    assert str(e.value).startswith(url) and "\n" not in str(e.value)
    # the batch is refused for top_k -1, resent once with llama.cpp's "off" (0), refused as a batch and never
    # retried; everything after goes one prompt per request with top_k 0 and the other neutral fields kept
    assert [(isinstance(s["prompt"], list), s["top_k"]) for s in b.seen] == \
        [(True, -1), (True, 0)] + [(False, 0)] * (len(b.seen) - 2)
    assert all(s["repeat_penalty"] == 1.0 and s["min_p"] == 0 and s["temperature"] == 0 for s in b.seen)
    # generation still works there, one prompt per request
    gens = backend(url).generate(list(PROBES), 3)
    assert [g.text for g in gens] == [g.text for g in tiny.generate(list(PROBES), 3)]


def test_replayed_vllm_format_passes_the_self_check_and_scores(fast_backoff: None) -> None:
    rec = _fixture("vllm.json")
    seen: list[dict[str, Any]] = []
    for url in _serve(_replay_handler(rec["exchanges"], seen)):
        be = OpenAIBackend.from_spec(f"{rec['model']}@{url}", "vllm")
        assert len(seen) == 2  # batched: one request generates, one echoes
        prompt, cont = rec["scored"]["prompt"], rec["scored"]["continuation"]
        got = be.score([prompt], [cont])[0]
        ex = next(r["response"]["choices"][0]["logprobs"] for r in rec["exchanges"]
                  if r["request"]["prompt"] == prompt + cont)
        keep = [i for i, off in enumerate(ex["text_offset"]) if len(prompt) <= off < len(prompt + cont)]
        assert got.tokens == tuple(ex["tokens"][i] for i in keep) and "".join(got.tokens) == cont
        assert got.logprobs == tuple(ex["token_logprobs"][i] for i in keep)


def test_replayed_llama_cpp_python_server_is_refused_by_the_self_check(fast_backoff: None) -> None:
    """The exchanges recorded from a real llama-cpp-python 0.3.36 server (benchmarks/openai_server.py --record):
    the batch is refused with HTTP 500 and never retried, and the shifted echo fails the self-check in one line."""
    rec = _fixture("llama_cpp_python.json")
    refused = [x for x in rec["exchanges"] if isinstance(x["request"]["prompt"], list)]
    assert refused and all(x["status"] == 500 for x in refused)  # what the server did, as recorded
    seen: list[dict[str, Any]] = []
    for url in _serve(_replay_handler(rec["exchanges"], seen)):
        with pytest.raises(UserError, match=r"self-check failed.*#1983") as e:
            OpenAIBackend.from_spec(f"{rec['model']}@{url}", "llama-cpp-python")
        assert str(e.value).startswith(url) and "\n" not in str(e.value)
    # refused for top_k -1 (a 500 naming it), then as a batch; then one prompt per request with top_k 0
    assert [(isinstance(s["prompt"], list), s["top_k"]) for s in seen] == \
        [(True, -1), (True, 0)] + [(False, 0)] * (len(seen) - 2)
    # the requests the real server saw (singles go out concurrently: their order may differ)
    assert sorted(json.dumps(s["prompt"]) for s in seen) == sorted(json.dumps(x["request"]["prompt"])
                                                                   for x in rec["exchanges"])


def test_an_api_that_rejects_unknown_fields_gets_the_standard_ones(server: tuple[str, Behaviour],
                                                                    tiny: TinyBackend, fast_backoff: None) -> None:
    url, b = server
    b.standard_only = True
    be = backend(url)
    assert [g.text for g in be.generate(list(PROBES), 3)] == [g.text for g in tiny.generate(list(PROBES), 3)]
    # refused; resent with top_k's other "off" (0) and without the rest; refused again; resent with none of them
    assert [s.get("top_k") for s in b.seen] == [-1, 0, None] and not set(b.seen[2]) & set(oa.NEUTRAL_EXTRA)
    assert b.seen[2]["temperature"] == 0 and b.seen[2]["top_p"] == 1
    be.generate(list(PROBES), 3)
    assert len(b.seen) == 4  # learnt once per backend


def test_a_field_refused_on_several_threads_at_once_gets_its_fallback(server: tuple[str, Behaviour],
                                                                      tiny: TinyBackend, fast_backoff: None) -> None:
    url, b = server
    b.strict_top_k, b.delay_s = True, 0.05  # four single-prompt requests with top_k -1 in flight together
    prompts = [f"{p} {i}" for i in range(4) for p in PROBES]
    got = backend(url, max_batch=1, concurrency=4).generate(prompts, 3)
    assert [g.text for g in got] == [g.text for g in tiny.generate(prompts, 3)]
    refused = [s for s in b.seen if s["top_k"] == -1]
    assert 1 <= len(refused) <= 4 and len(b.seen) == len(refused) + len(prompts)  # each refused once, none retried
    assert all(s["top_k"] == 0 and s["min_p"] == 0 for s in b.seen if s not in refused)
