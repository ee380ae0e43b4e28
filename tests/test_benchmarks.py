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


def run(module, *flags, timeout=300):
  out = subprocess.run([sys.executable, "-m", module, *flags], cwd=ROOT,
                       capture_output=True, text=True, timeout=timeout,
                       check=True)
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


def test_recurrent_layouts_agree():
  # Length 11: a chunk of 8 and a tail of 3 (recurrent.chunked_scan's lengths
  # that are whole chunks are tested in test_recurrent).
  length = 11
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
             "--models=lstm,rglru:parallel", *TINY)
  assert [r["model"] for r in rows] == ["lstm", "rglru:parallel"]
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


def test_accelerator_smoke_writes_every_section(tmp_path):
  """The GPU check's code paths at tiny sizes on this machine; what needs a GPU
  is marked skipped with the reason."""
  # Under a minute on an idle 2-core CPU; the timeout leaves room for a shared one.
  run("benchmarks.accelerator", "--smoke", f"--out={tmp_path}", timeout=1200)
  with open(tmp_path / "accelerator.json") as f:
    report = json.load(f)
  text = (tmp_path / "accelerator.md").read_text()
  assert list(report["sections"]) == ["tests", "mfu", "throughput", "longest",
                                      "group"]
  for name, section in report["sections"].items():
    assert f"## {name}" in text and section["seconds"] >= 0
    assert section["status"] in ("ok", "skipped"), (name, section)
    for row in section.get("rows", []):
      assert row["status"] in ("ok", "passed", "skipped"), (name, row)
  assert report["device"]["jax"] and report["device"]["device_kind"]
  sections = report["sections"]
  mfu = {r["attention_impl"]: r for r in sections["mfu"]["rows"]}
  assert mfu["xla"]["flops_per_step"] > 0 and mfu["xla"]["model_flops_per_s"] > 0
  throughput = {(r["model"], r["impl"]): r for r in sections["throughput"]["rows"]}
  assert ("lstm", "impl=scan") in throughput and (
      "mamba", "scan=parallel") in throughput
  assert throughput["lstm", "impl=scan"]["tokens_per_s"] > 0
  longest = {r["impl"]: r for r in sections["longest"]["rows"]}
  assert longest["xla"]["longest_length"] and longest["blockwise"]["longest_length"]
  group = {(r["model"], r["impl"]): r for r in sections["group"]["rows"]}
  assert group["transformer", ""]["group_trials_per_s"] > 0
  if report["device"]["platform"] != "gpu":
    assert sections["tests"]["status"] == "skipped"
    assert "GPU" in sections["tests"]["reason"]
    assert mfu["xla"]["mfu"] is None and "mfu null" in sections["mfu"]["reason"]
    for row in (mfu["cudnn"], throughput["lstm", "impl=cudnn"],
                throughput["transformer", "attention_impl=cudnn"],
                longest["cudnn"], group["lstm", "impl=cudnn"]):
      assert row["status"] == "skipped" and "GPU" in row["reason" if "reason" in row else "stopped"]


def test_dry_run_plans_a_sweep(tmp_path):
  out = tmp_path / "plan.jsonl"
  rows = run("benchmarks.dry_run",
             "--config=experiments/reproduce.py:claim=adding,quick,model=lstm,length=20",
             "--time_steps=1", f"--out={out}", timeout=900)
  *groups, total = rows
  assert total["summary"] and total["groups"] == len(groups) >= 1
  assert total["trial_steps"] == sum(g["trial_steps"] for g in groups) > 0
  assert all(g["compiles"] and g["fits"] and g["step_s"] > 0 for g in groups)
  assert total["estimate_s"] > 0 and not total["not_fitting"]
  assert out.read_text().count("\n") == len(rows)


def test_transformer_train_flops_by_hand():
  from benchmarks import accelerator  # pylint: disable=import-outside-toplevel
  from seqjax.models.transformer import TransformerConfig  # pylint: disable=import-outside-toplevel
  cfg = TransformerConfig(width=2, num_layers=1, num_heads=1, mlp_ratio=4)
  # matmul parameters 1 * (4 + 2 * 4) * 2^2 + 2 * 16 = 80; tokens 2 * 3 = 6;
  # 6 * 80 * 6 + 12 * 1 * 3 * 2 * 6 = 2880 + 432.
  assert accelerator.train_flops(cfg, length=3, batch=2) == 3312
  assert accelerator.peak_bf16("NVIDIA H100 80GB HBM3") == 989.4e12
  assert accelerator.peak_bf16("NVIDIA H100 PCIe") == 756e12
  assert accelerator.peak_bf16("cpu") is None
