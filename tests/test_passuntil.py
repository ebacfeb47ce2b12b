"""PassUntil: sampling in the backends, the estimators of `analysis.passuntil` on planted pass probabilities, the
experiment's loop and its stored runs, and the CLI command."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from conftest import make_tiny_checkpoint
from emergentlab.analysis.passuntil import (
    fit_law,
    likelihood_interval,
    mean_rate,
    planted_rate,
    rate_interval,
    rung_table,
)
from emergentlab.cli import app
from emergentlab.experiments import passuntil as pu
from emergentlab.models.base import Generation, Sampler, TokenScores, draw_seed, row_uniforms
from emergentlab.models.tiny import TinyBackend
from emergentlab.records import Record, ScaleFacts
from emergentlab.store import Store

PROMPTS = ["12+34=", "Q: 7*8\nA:", "hello", "a b c ", "726+152="]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One intra-op thread, as the experiment runs (`passuntil.THREADS`): tiny forward passes on a busy 2-core box
    are ~100x slower with two spinning OpenMP threads."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


class Planted:
    """A sampler whose draw for a prompt passes (emits its answer) with a planted probability, decided by the
    uniform `row_uniforms` gives (prompt, seed): draws are reproducible per (prompt, seed) like a real backend's."""

    name = "planted"

    def __init__(self, p: dict[str, float], answer: dict[str, str]) -> None:
        self.p, self.answer = p, answer
        self.calls: list[int] = []

    def sample(self, prompts: Sequence[str], max_new_tokens: int, stop: Sequence[str] = (),
               temperature: float = 1.0, seeds: Sequence[int] = ()) -> list[Generation]:
        self.calls.append(len(prompts))
        out = []
        for prompt, seed in zip(prompts, seeds or [0] * len(prompts), strict=True):
            text = self.answer[prompt] if row_uniforms(prompt, seed, 1)[0] < self.p[prompt] else "wrong"
            out.append(Generation(text, tuple(text)))
        return out

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[TokenScores]:
        return [TokenScores((-1.0,) * len(c), (False,) * len(c), tuple(c)) for c in continuations]

    def generate(self, prompts: Sequence[str], max_new_tokens: int, stop: Sequence[str] = ()) -> list[Generation]:
        return [Generation("wrong", tuple("wrong")) for _ in prompts]

    def facts(self) -> ScaleFacts:
        return ScaleFacts(params=1.0)


def _planted(p: Sequence[float]) -> tuple[Planted, list[Record]]:
    records = [Record("s", "planted", "t", f"{i:03d}", "0shot", "generative", f"item {i} =", f"{i}")
               for i in range(len(p))]
    return Planted({r.prompt: q for r, q in zip(records, p, strict=True)},
                   {r.prompt: r.target for r in records}), records


def _draws(p: np.ndarray, budget: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(passes, draws) per item of a geometric-until-first-pass run cut at `budget`."""
    k = rng.geometric(np.clip(p, 1e-300, 1))
    return (k <= budget).astype(float), np.minimum(k, budget).astype(float)


# ---- backends ------------------------------------------------------------------------------------------------
def test_fake_backend_is_a_sampler_and_tiny_is_too(tiny_ckpt: Path) -> None:
    assert isinstance(Planted({}, {}), Sampler) and isinstance(TinyBackend.from_path(tiny_ckpt), Sampler)


def test_tiny_sampling_is_seeded_per_prompt_and_independent_of_batching(tiny_ckpt: Path) -> None:
    whole = TinyBackend.from_path(tiny_ckpt)
    narrow = TinyBackend(whole.model, batch_tokens=16)  # one or two rows per batch
    seeds = [draw_seed(3, k) for k in range(len(PROMPTS))]
    a = whole.sample(PROMPTS, 8, ["\n"], 1.0, seeds)
    assert a == narrow.sample(PROMPTS, 8, ["\n"], 1.0, seeds) == whole.sample(PROMPTS, 8, ["\n"], 1.0, seeds)
    # a row's draw is its own: the same prompt and seed alone, or beside other prompts, draws the same text
    assert whole.sample(PROMPTS[2:3], 8, ["\n"], 1.0, seeds[2:3]) == a[2:3]
    # another seed draws otherwise (an untrained model spreads its mass over ~all 128 characters)
    other = whole.sample(PROMPTS, 8, ["\n"], 1.0, [s + 1 for s in seeds])
    assert [g.text for g in other] != [g.text for g in a]
    assert all("\n" not in g.text and len(g.text) <= 8 for g in a + other)


def test_tiny_sampling_at_temperature_towards_zero_is_greedy(tiny_ckpt: Path) -> None:
    b = TinyBackend.from_path(tiny_ckpt)
    greedy = b.generate(PROMPTS, 8, ["\n"])
    assert b.sample(PROMPTS, 8, ["\n"], 0.0, [1] * 5) == greedy
    assert b.sample(PROMPTS, 8, ["\n"], 1e-6, list(range(5))) == greedy
    with pytest.raises(ValueError, match="temperature"):
        b.sample(PROMPTS, 8, ["\n"], -1.0)


@pytest.mark.parametrize("temperature", [1.0, 0.05])
def test_tiny_draws_follow_the_softmax_at_the_temperature(tiny_ckpt: Path, temperature: float) -> None:
    b = TinyBackend.from_path(tiny_ckpt)
    prompt, n = "726+152=", 3000
    with torch.inference_mode():
        logits = b.model(torch.tensor([[0, *b.tok.encode(prompt)]]))[0, -1].double()
    probs = (logits / temperature).softmax(-1)
    drawn = [g.text for g in b.sample([prompt] * n, 1, (), temperature, list(range(n)))]
    for tok in probs.argsort(descending=True)[:3].tolist():  # the three likeliest characters
        want, got = float(probs[tok]), float(np.mean([d == chr(tok) for d in drawn]))
        assert abs(got - want) < 4 * np.sqrt(want * (1 - want) / n) + 1e-9, (tok, got, want)


def test_draw_seeds_are_fixed_and_distinct() -> None:
    seeds = [draw_seed(0, k) for k in range(1000)]
    assert len(set(seeds)) == 1000 and all(0 <= s < 2**31 for s in seeds)
    assert draw_seed(0, 0) == draw_seed(0, 0) != draw_seed(1, 0)
    u = row_uniforms("x", 5, 4)
    assert np.array_equal(u, row_uniforms("x", 5, 4)) and not np.array_equal(u, row_uniforms("y", 5, 4))


# ---- estimators: known answers --------------------------------------------------------------------------------
def test_likelihood_interval_of_no_pass_and_of_all_passes() -> None:
    lo, hi = likelihood_interval(0, 1000, 0.9)
    assert lo == 0 and hi == pytest.approx(-np.expm1(-2.705543 / 2 / 1000), rel=1e-4)  # χ²₁(0.9) = 2.7055
    lo, hi = likelihood_interval(5, 5, 0.9)
    assert hi == 1 and 0.5 < lo < 1
    lo, hi = likelihood_interval(30, 300, 0.9)
    assert lo < 0.1 < hi


def test_sampling_until_the_first_pass_recovers_planted_pass_probabilities() -> None:
    p = np.random.default_rng(0).beta(0.6, 6.0, 80).clip(0.002)  # items from easy to very hard
    budget = 300
    backend, records = _planted(p.tolist())
    items = pu.sample_until(backend, records, 4, ["\n"], 1.0, budget, 256, seed=0)
    assert list(items["example_id"]) == [r.example_id for r in records]
    row = rung_table(items.assign(model="m"), 0.9, 500, 0, {"m": budget}).iloc[0]
    # the task pass rate (mean over items) and the per-draw rate each hold the planted value in their interval
    assert row["pu_lo"] <= p.mean() <= row["pu_hi"] and abs(row["pu"] - p.mean()) < 0.03
    assert row["per_draw_lo"] <= planted_rate(p, budget) <= row["per_draw_hi"]
    # heterogeneous items: the per-draw rate weighs hard items more and falls well below the mean pass rate
    assert planted_rate(p, budget) < 0.6 * p.mean() and row["per_draw"] < row["pu"]
    assert row["items"] == 80 and row["passes"] == items["passes"].sum() and row["draws"] == items["draws"].sum()


def test_censoring_at_the_budget() -> None:
    backend, records = _planted([0.0, 1.0, 0.0, 0.5])
    items = pu.sample_until(backend, records, 4, [], 1.0, 25, 3, seed=1)
    assert items["draws"].tolist()[:3] == [25, 1, 25] and items["passes"].tolist()[:3] == [0, 1, 0]
    assert 1 <= items["draws"].iat[3] <= 25 and items["passes"].iat[3] == 1  # 0.5 per draw: passes within 25
    row = rung_table(items.assign(model="m"), 0.9, 200, 0, {"m": 25}).iloc[0]
    assert row["censored"] == 2 and row["per_draw"] == 2 / int(items["draws"].sum())


def test_draws_do_not_depend_on_batch_or_round_size() -> None:
    p = np.linspace(0.01, 0.4, 30)
    runs = []
    for batch in (1, 7, 64, 4096):
        backend, records = _planted(p.tolist())
        runs.append(pu.sample_until(backend, records, 4, [], 1.0, 200, batch, seed=5))
        assert max(backend.calls) <= batch
    assert all(r.equals(runs[0]) for r in runs[1:])
    backend, records = _planted(p.tolist())
    assert not pu.sample_until(backend, records, 4, [], 1.0, 200, 64, seed=6).equals(runs[0])


def test_intervals_cover_at_about_their_nominal_rate() -> None:
    """Homogeneous items (p = 0.03, 40 items, budget 150): over 100 runs the 90 % intervals of the mean pass rate and
    of the per-draw rate hold the planted rate about 90 % of the time."""
    rng = np.random.default_rng(7)
    p, hits_mean, hits_draw, reps = 0.03, 0, 0, 100
    for k in range(reps):
        s, d = _draws(np.full(40, p), 150, rng)
        _, lo, hi = mean_rate(s, d, 0.9)
        hits_mean += lo <= p <= hi
        lo, hi = rate_interval(s, d, 0.9, 300, seed=k)
        hits_draw += lo <= p <= hi
    assert 0.8 <= hits_mean / reps <= 0.98 and 0.8 <= hits_draw / reps <= 0.99


def test_the_task_law_is_recovered_from_sampled_rates() -> None:
    alpha, c = 0.5, 300.0
    sizes = {f"r{j}": n for j, n in enumerate(np.geomspace(1e4, 3e6, 6))}
    rng = np.random.default_rng(2)
    frames = []
    for m, n in sizes.items():
        s, d = _draws(np.full(150, np.exp(-c * n**-alpha)), 4000, rng)
        frames.append(pd.DataFrame({"model": m, "passes": s, "draws": d}))
    table = rung_table(pd.concat(frames, ignore_index=True), 0.9, 200, 0)
    law = fit_law(table, sizes, 0.9, 500, 0)
    assert law["rungs_used"] == 6
    assert law["alpha_lo"] <= alpha <= law["alpha_hi"] and abs(law["alpha"] - alpha) < 0.05
    assert law["c_lo"] <= c <= law["c_hi"]
    want = np.exp(-c * (10 * max(sizes.values())) ** -alpha)
    assert law["pu_at_10x_lo"] <= want <= law["pu_at_10x_hi"]
    assert fit_law(table.iloc[:2], sizes) == {}  # two rungs: no fit


# ---- the experiment, its store and the CLI ---------------------------------------------------------------------
def test_experiment_stores_runs_that_reload_into_its_sections(tiny_ladder: list[Path], tmp_path: Path) -> None:
    cfg = pu.PassUntilConfig(models=tuple(f"tiny:{p}" for p in tiny_ladder), task="add1", n=4, budget=6, batch=5,
                             n_boot=50)
    with Store(tmp_path / "r.sqlite") as store:
        pu.run(cfg, store)
        secs = pu.sections(store, pu.NAME)
        records = store.records(pu.NAME)
        runs = store.runs(pu.NAME)
    assert len(records) == 8 and set(records["model"]) == {p.name for p in tiny_ladder}
    assert {c["model"] for c in runs.values()} == {p.name for p in tiny_ladder}
    (sec,) = secs
    table = sec.tables[0].frame
    assert list(table["model"]) == [p.name for p in tiny_ladder]  # by parameters
    assert (table["items"] == 4).all() and (table["draws"] <= 24).all()
    assert (table["PU 90% lo"] <= table["PU 90% hi"]).all()
    assert {"target-string probability", "greedy exact_match", "per_draw"} <= set(table.columns)


def test_config_refuses_what_cannot_run() -> None:
    for bad in ({"temperature": 0.0}, {"metric": "token_accuracy"}, {"metric": "mc_grade"}, {"budget": 0},
                {"task": "nope"}):
        with pytest.raises(ValueError):
            pu.PassUntilConfig(**bad)  # type: ignore[arg-type]


def test_cli_passuntil_runs_and_reports(tmp_path: Path) -> None:
    for i in range(3):
        make_tiny_checkpoint(tmp_path / "ladder" / f"r{i}", seed=i, n_embd=16 * (i + 1))
    out = tmp_path / "run"
    argv = ["passuntil", "--out", str(out), "--ladder", str(tmp_path / "ladder"), "--task", "add1", "--n", "3",
            "--budget", "3", "--json"]
    res = CliRunner().invoke(app, argv)
    assert res.exit_code == 0, res.output
    assert (out / "report.html").is_file() and "PassUntil" in (out / "report.html").read_text()
    bad = CliRunner().invoke(app, ["passuntil", "--out", str(out), "--temperature", "0"])
    assert bad.exit_code == 2
