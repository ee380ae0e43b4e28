"""The benchmark scripts run at tiny sizes and print what docs/benchmarks.md
reads from them (speed itself is never asserted in tests)."""

import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow  # every test starts a benchmark process
TINY = ["--batch=2", "--length=8", "--steps=1"]


def run(module, *flags):
  out = subprocess.run([sys.executable, "-m", module, *flags], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, check=True)
  return [json.loads(line) for line in out.stdout.splitlines()
          if line.startswith("{")]


def test_step_time():
  (row,) = run("benchmarks.step_time", "--model=gru", "--width=8", "--vocab=5",
               "--model_args=scan_chunk=3", *TINY)
  assert row["model"] == "gru" and row["model_args"] == "scan_chunk=3"
  assert row["step_time_ms"] > 0 and row["num_params"] > 0


def test_recurrent_vs_flax():
  rows = run("benchmarks.recurrent_vs_flax", "--width=8", "--vocab=5", *TINY)
  assert [r["model"] for r in rows] == ["lstm", "gru"]
  for row in rows:
    assert row["flax_over_seqjax"] > 0
    assert row["seqjax"]["num_params"] > 0 and row["flax"]["num_params"] > 0


def test_attention_vs_flax():
  (row,) = run("benchmarks.attention_vs_flax", "--width=64", "--layers=1",
               "--vocab=5", *TINY)
  assert row["seqjax"]["num_params"] == row["flax_mha"]["num_params"]
  assert row["flax_mha_over_seqjax"] > 0


def test_attention_core_agrees_with_jax():
  (row,) = run("benchmarks.attention_core", "--heads=2", "--dim=4", *TINY)
  assert row["seqjax_xla"]["max_abs_diff_from_jax"] < 1e-5
  assert row["seqjax_blockwise"]["max_abs_diff_from_jax"] < 1e-5


@pytest.mark.parametrize("length", [8, 11])
def test_recurrent_layouts_agree(length):
  (row,) = run("benchmarks.recurrent_layouts", "--batch=2", f"--length={length}",
               "--width=8", "--steps=1")
  for name in ("seqjax_scan_chunk_8", "custom_vjp_scan_chunk_1", "custom_vjp_scan_chunk_8",
               "one_weight_in_step", "one_weight_hoisted"):
    assert row[name]["max_grad_diff"] < 1e-4, name
  assert row["layer_matmul_gflop"] == pytest.approx(6 * 2 * 2 * length * 8 * 32 / 1e9)
  assert row["roofline_ms"] > 0


def test_sweep_throughput():
  rows = run("benchmarks.sweep_throughput", "--steps=2", "--models=lstm",
             "--length=4", "--jobs=2", "--learning_rates=0.01")
  assert [r["way"] for r in rows] == ["per_trial", "grouped", "rerun"]
  for row in rows:
    assert row["trials"] == 2 and row["trial_steps"] == 4
    assert row["statuses"] == ["completed"] and row["trial_steps_per_s"] > 0


def test_selective_step():
  rows = run("benchmarks.selective_step", "--width=8", "--vocab=5",
             "--models=lstm,mamba:sequential,rglru:parallel", *TINY)
  assert [r["model"] for r in rows] == ["lstm", "mamba:sequential", "rglru:parallel"]
  assert rows[0]["over_lstm"] == 1.0 and all(r["num_params"] > 0 for r in rows)


def test_scored_positions():
  (row,) = run("benchmarks.scored_positions", "--vocab=64", "--length=16",
               "--pairs=2", "--batch=2", "--width=8", "--steps=1")
  assert row["scored_ms"] > 0 and row["full_ms"] > 0


def test_matmul():
  rows = run("benchmarks.matmul", "--rows=64", "--width=8", "--steps=1")
  assert len(rows) == 4 * 3 + 1 and rows[-1]["shape"] == "lstm_step"
  for row in rows:
    assert row["jax"]["ms"] > 0 and row["xla_kernel"] in ("ynn", "eigen")
    assert row["machine"]["cpu"]["cores"] > 0 and row["machine"]["isa"] == "native"


@pytest.mark.skipif(shutil.which("nm") is None, reason="--isa=avx2 reads jaxlib's symbols with nm")
def test_emulated_avx2():
  (row, *_) = run("benchmarks.matmul", "--rows=64", "--width=8", "--steps=1",
                  "--isa=avx2")
  assert row["machine"]["isa"] == "avx2" and row["machine"]["emulated"]
  assert "--xla_cpu_max_isa=AVX2" in row["machine"]["xla_flags"]


def test_group_step():
  rows = run("benchmarks.group_step", "--models=rnn,lstm", "--group=2",
             "--width=8", "--vocab=5", *TINY)
  assert [r["model"] for r in rows] == ["rnn", "lstm"]
  for row in rows:
    assert row["group"] == 2 and row["solo_ms"] > 0 and row["group_ms"] > 0
    assert row["group_over_n_solo"] > 0
