"""Every GPU path checked and measured in one command, for a few minutes of GPU.

  python -m benchmarks.accelerator --out=DIR [--smoke]

Writes DIR/accelerator.json and DIR/accelerator.md with one section each:
  tests       the tests marked `accelerator` (tests/test_accelerator.py: cuDNN
              attention against xla in float32 and bfloat16, cuDNN LSTM against
              the scan, the bfloat16 policy, a sharded train step over all local
              devices against one device), run by pytest;
  mfu         the transformer's train step at width 1024, length 2048, bfloat16:
              model FLOPs per step counted analytically (`train_flops`) against
              the device's peak bfloat16 FLOP/s (`PEAK_BF16`; an unknown device
              gives mfu null, said so);
  throughput  tokens per second of every architecture's train step at lengths
              1k, 4k and 16k, each scan of the linear and selective recurrences
              and each attention and LSTM implementation;
  longest     the longest length (doubling) whose train step fits the device's
              memory, per attention implementation, by XLA's compiled memory
              analysis (benchmarks/attention_memory.py, compiled only);
  group       trials per second of a trial group of 32 against the same trials
              one at a time (benchmarks/group_step.py);
  device      the device, driver, jax and jaxlib versions; every section also
              records the seconds it took.
On one GPU the sizes are chosen to finish in under 8 minutes, and every section
stops starting new points at its time budget (`BUDGET_S`; the points left are
listed as skipped). A section that fails is recorded with its error and the
others still run. `--smoke` runs the same code at tiny sizes on a CPU in under a
minute (CI runs it: tests/test_benchmarks.py), compiled with XLA's backend
optimisations off and its older fusion emitters (`SMOKE_XLA_FLAGS`); what needs
a GPU is marked skipped with the reason.
"""

import dataclasses
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

from absl import app
from absl import flags
import jax
import jaxlib

from benchmarks import attention_memory
from benchmarks import group_step
from benchmarks import machine
from benchmarks import step_time
from seqjax import configs
from seqjax import models
from seqjax import stepping
from seqjax.errors import ConfigError
from seqjax.interfaces import IOSpec
from seqjax.models import attention
from seqjax.models import linear_recurrence

_OUT = flags.DEFINE_string("out", None, "Directory for accelerator.json and .md.")
_SMOKE = flags.DEFINE_bool("smoke", False, "Tiny sizes, for a CPU (CI).")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = 16
# Peak dense bfloat16 FLOP/s by device kind (a substring of
# `jax.devices()[0].device_kind`, first match), from the vendors' data sheets.
PEAK_BF16 = (("H200", 989.4e12), ("H100 PCIe", 756e12), ("H100 NVL", 835e12),
             ("H100", 989.4e12), ("A100", 312e12))
# The implementation fields, their values from the model code.
CHOICES = {"scan": linear_recurrence.SCANS,
           "attention_impl": attention.IMPLEMENTATIONS,
           "impl": ("scan", "cudnn")}
SIZES = {
    False: dict(
        mfu=dict(width=1024, length=2048, layers=4, heads=8, batch=8, steps=5),
        throughput=dict(lengths=(1024, 4096, 16384), width=256, layers=2,
                        batch=4, steps=3),
        longest=dict(start=1024, cap=2**18, width=256, layers=2, heads=4,
                     block_size=512),
        group=dict(n=32, width=128, length=256, batch=32, layers=1, steps=5)),
    True: dict(
        mfu=dict(width=32, length=64, layers=1, heads=2, batch=2, steps=1),
        throughput=dict(lengths=(32,), width=16, layers=1, batch=2, steps=1),
        longest=dict(start=32, cap=64, width=16, layers=1, heads=2,
                     block_size=16),
        group=dict(n=4, width=16, length=16, batch=4, layers=1, steps=1)),
}
# --smoke compiles the same programs with XLA's backend optimisations off and
# XLA:CPU's loop emitters for fusions instead of its MLIR fusion emitters: less
# CPU time for each compile (the level: 36 -> 18 CPU-seconds for four train
# steps), slower machine code, which tiny sizes do not feel.
SMOKE_XLA_FLAGS = ("--xla_backend_optimization_level=0 "
                   "--xla_cpu_use_fusion_emitters=false")
BUDGET_S = dict(tests=150, mfu=60, throughput=155, longest=60, group=45)
GROUP_MODELS = (("lstm", "impl=scan"), ("lstm", "impl=cudnn"), ("transformer", ""))


def on_gpu() -> bool:
  return jax.default_backend() == "gpu"


def peak_bf16(kind: str) -> float | None:
  return next((peak for name, peak in PEAK_BF16 if name in kind), None)


def train_flops(cfg, length: int, batch: int) -> float:
  """Model FLOPs of one train step of the decoder `transformer` (forward and
  backward, 3x the forward): 6 per parameter of every matmul per token (per
  block 4 D^2 attention projections and 2 mlp_ratio D^2 MLP; the D x V output
  layer) plus the attention matrix, 12 L D per token per block (Q K^T and A V,
  the whole L x L matrix counted, as PaLM's MFU does); embeddings and norms not
  counted."""
  d, layers = cfg.width, cfg.num_layers
  matmul_params = layers * (4 + 2 * cfg.mlp_ratio) * d * d + d * VOCAB
  tokens = batch * length
  return 6 * matmul_params * tokens + 12 * layers * length * d * tokens


def experiment(name: str, extra: str, width: int, layers: int, length: int,
               batch: int, **train_fields):
  cfg = step_time.model_section(name, width, layers, extra)
  return step_time.make_experiment(cfg, length, VOCAB, batch, **train_fields)


def lm_variants() -> list[tuple[str, str]]:
  """(model, implementation override) of every model that serves a language
  model, one per value of its implementation field (`CHOICES`)."""
  io = IOSpec(kind="lm", length=8, output_size=VOCAB, input_vocab=VOCAB)
  out = []
  for name in sorted(models.MODELS):
    cls = models.MODELS[name]
    try:
      cls().build(io)
    except ConfigError:
      continue
    fields = {f.name for f in dataclasses.fields(cls)}
    key = next((k for k in CHOICES if k in fields), None)
    out += [(name, f"{key}={v}") for v in CHOICES[key]] if key else [(name, "")]
  return out


class Budget:
  """Seconds left to a section; `over()` once its budget is spent (never with
  `seconds=None`: the smoke run goes through every point)."""

  def __init__(self, seconds: float | None):
    self.end = None if seconds is None else time.perf_counter() + seconds

  def over(self) -> bool:
    return self.end is not None and time.perf_counter() > self.end

  def left(self, default: float) -> float:
    return default if self.end is None else max(10, self.end - time.perf_counter())


def point(fn, **labels) -> dict:
  """`fn()`'s row with `labels`; a ConfigError (a path this device lacks) is a
  skipped point, any other error a failed one, so one point cannot end the run."""
  try:
    return dict(labels, status="ok", **fn())
  except ConfigError as e:
    return dict(labels, status="skipped", reason=str(e))
  except Exception as e:  # pylint: disable=broad-except
    return dict(labels, status="error", reason=f"{type(e).__name__}: {e}"[:400])


def section_tests(sizes, budget, out_dir) -> dict:
  del sizes
  xml = os.path.join(out_dir, "accelerator_tests.xml")
  proc = subprocess.run(
      [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m",
       "accelerator", "tests/test_accelerator.py", f"--junitxml={xml}"],
      cwd=ROOT, capture_output=True, text=True, check=False,
      timeout=budget.left(600),
      # This process may hold the GPU already: the tests allocate as they go.
      env=dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false"))
  rows = []
  for case in ET.parse(xml).getroot().iter("testcase"):
    outcome = next(iter(case), None)
    status = "passed" if outcome is None else outcome.tag
    rows.append(dict(test=case.get("name"), status=status,
                     reason=(outcome.get("message") or "")[:300]
                     if outcome is not None else ""))
  passed = sum(r["status"] == "passed" for r in rows)
  failed = sum(r["status"] in ("failure", "error") for r in rows)
  result = dict(rows=rows, passed=passed, failed=failed,
                exit_code=proc.returncode)
  if failed or proc.returncode not in (0, 5):
    return dict(result, status="failed", reason=proc.stdout[-2000:])
  if not passed:
    return dict(result, status="skipped",
                reason=rows[0]["reason"] if rows else "no accelerator tests")
  return result


def section_mfu(sizes, budget, out_dir) -> dict:
  """One row per attention implementation that runs here (xla, cudnn)."""
  del out_dir
  s = sizes["mfu"]
  kind = jax.devices()[0].device_kind
  peak = peak_bf16(kind)
  rows = []
  for impl in ("xla", "cudnn"):
    labels = dict(attention_impl=impl)
    if budget.over():
      rows.append(dict(labels, status="skipped", reason="time budget"))
      continue
    rows.append(point(lambda: _mfu(impl, s, peak), **labels))
  if peak is None:
    return dict(rows=rows,
                reason=f"no peak bfloat16 FLOP/s known for {kind!r}: mfu null")
  return dict(rows=rows)


def _mfu(impl: str, s: dict, peak: float | None) -> dict:
  cfg = step_time.model_section("transformer", s["width"], s["layers"],
                                f"num_heads={s['heads']},attention_impl={impl}")
  exp = step_time.make_experiment(cfg, s["length"], VOCAB, s["batch"],
                             compute_dtype="bfloat16")
  timing = step_time.time_steps(exp, s["steps"])
  flops = train_flops(configs.to_dataclass(models.MODELS, cfg, "model"),
                      s["length"], s["batch"])
  step_s = timing["step_time_ms"] / 1e3
  return dict(compute_dtype="bfloat16", **s, flops_per_step=flops,
              step_time_ms=timing["step_time_ms"],
              model_flops_per_s=flops / step_s, peak_bf16_flops_per_s=peak,
              mfu=flops / step_s / peak if peak else None,
              compile_s=timing["compile_s"], num_params=timing["num_params"])


def section_throughput(sizes, budget, out_dir) -> dict:
  del out_dir
  s = sizes["throughput"]
  rows = []
  for length in s["lengths"]:
    for name, extra in lm_variants():
      labels = dict(model=name, impl=extra, length=length)
      if budget.over():
        rows.append(dict(labels, status="skipped", reason="time budget"))
        continue
      rows.append(point(lambda: _tokens_per_s(name, extra, length, s), **labels))
  return dict(rows=rows)


def _tokens_per_s(name, extra, length, s) -> dict:
  exp = experiment(name, extra, s["width"], s["layers"], length, s["batch"])
  t = step_time.time_steps(exp, s["steps"])
  return dict(tokens_per_s=t["tokens_per_s"], step_time_ms=t["step_time_ms"],
              compile_s=t["compile_s"], temp_mb=t["temp_mb"])


def section_longest(sizes, budget, out_dir) -> dict:
  del out_dir
  s = sizes["longest"]
  have = stepping.device_memory_bytes()
  rows = []
  for impl in attention.IMPLEMENTATIONS:
    longest, length, reason, status = None, s["start"], "", "ok"
    while length <= s["cap"] and not budget.over():
      r = point(lambda: attention_memory.measure(
          impl, length, s["width"], s["layers"], VOCAB, s["heads"],
          s["block_size"], run_limit_gib=0), impl=impl)
      if r["status"] != "ok":
        reason, status = r["reason"], r["status"] if longest is None else "ok"
        break
      if r["xla_total_mib"] * 2**20 > have:
        reason = f"{length} needs {r['xla_total_mib']:.0f} MiB"
        break
      longest, length = length, 2 * length
    else:
      reason = "time budget" if budget.over() else f"cap {s['cap']} reached"
    rows.append(dict(impl=impl, status=status, longest_length=longest,
                     stopped=reason, device_memory_mib=have / 2**20,
                     **{k: s[k] for k in ("width", "layers", "heads")}))
  return dict(rows=rows)


def section_group(sizes, budget, out_dir) -> dict:
  del out_dir
  s = sizes["group"]
  rows = []
  for name, extra in GROUP_MODELS:
    labels = dict(model=name, impl=extra, group=s["n"])
    if budget.over():
      rows.append(dict(labels, status="skipped", reason="time budget"))
      continue
    rows.append(point(lambda: _group_rates(name, extra, s), **labels))
  return dict(rows=rows)


def _group_rates(name, extra, s) -> dict:
  r = group_step.measure(name, s["n"], s["batch"], s["length"], s["width"],
                         s["layers"], VOCAB, s["steps"], extra)
  return dict(group_trials_per_s=s["n"] / (r["group_ms"] / 1e3),
              solo_trials_per_s=1 / (r["solo_ms"] / 1e3), group_ms=r["group_ms"],
              solo_ms=r["solo_ms"], length=s["length"], batch=s["batch"],
              width=s["width"])


def device_info() -> dict:
  d = jax.devices()[0]
  info = dict(device_kind=d.device_kind, platform=d.platform,
              local_devices=jax.local_device_count(), jax=jax.__version__,
              jaxlib=jaxlib.__version__, driver=None,
              memory_gib=stepping.device_memory_bytes() / 2**30)
  for plugin in ("jax-cuda12-plugin", "jax-cuda12-pjrt", "libtpu"):
    try:
      info[plugin] = importlib.metadata.version(plugin)
    except importlib.metadata.PackageNotFoundError:
      pass
  if shutil.which("nvidia-smi"):
    query = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
         "--format=csv,noheader"], capture_output=True, text=True, check=False)
    info["driver"] = query.stdout.strip() or query.stderr.strip()
  return info


SECTIONS = {"tests": section_tests, "mfu": section_mfu,
            "throughput": section_throughput, "longest": section_longest,
            "group": section_group}


def run_section(fn, sizes, budget_s, out_dir) -> dict:
  """One section's result with its status and seconds; a section that fails
  is recorded (with its error) instead of ending the run."""
  t0 = time.perf_counter()
  try:
    result = fn(sizes, Budget(budget_s), out_dir)
  except Exception as e:  # pylint: disable=broad-except
    result = dict(status="error", reason=f"{type(e).__name__}: {e}"[:1000])
  result.setdefault("status", "ok")
  return dict(result, seconds=round(time.perf_counter() - t0, 2))


def markdown(report: dict) -> str:
  lines = [f"# Accelerator check{' (smoke)' if report['smoke'] else ''}", ""]
  lines += [f"- {k}: {v}" for k, v in report["device"].items()]
  lines += [f"- total: {report['total_s']} s", ""]
  for name, sec in report["sections"].items():
    lines += [f"## {name}", "",
              f"status: {sec['status']}, {sec['seconds']} s"
              + (f"; {sec['reason']}" if sec.get("reason") else ""), ""]
    rows = sec.get("rows", [])
    if rows:
      cols = list(dict.fromkeys(k for r in rows for k in r))
      lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
      lines += ["| " + " | ".join(_cell(r.get(c)) for c in cols) + " |"
                for r in rows]
      lines.append("")
  return "\n".join(lines)


def _cell(value) -> str:
  if isinstance(value, float):
    return f"{value:.4g}"
  return "" if value is None else str(value).replace("|", "/").replace("\n", " ")


def main(argv):
  del argv
  if _SMOKE.value:  # its timings are not figures: compile fast, same programs
    os.environ["XLA_FLAGS"] = " ".join(filter(None, [
        os.environ.get("XLA_FLAGS", ""), SMOKE_XLA_FLAGS]))
  machine.setup()
  machine.single_threaded_eigen()  # group steps run here
  if not _OUT.value:
    raise app.UsageError("--out=DIR is required.")
  os.makedirs(_OUT.value, exist_ok=True)
  smoke, t0 = _SMOKE.value, time.perf_counter()
  sizes = SIZES[smoke]
  sections = {}
  for name, fn in SECTIONS.items():
    sections[name] = run_section(fn, sizes, None if smoke else BUDGET_S[name],
                                 _OUT.value)
    print(json.dumps({name: {k: v for k, v in sections[name].items()
                             if k != "rows"}}), flush=True)
  report = dict(smoke=smoke, device=device_info(), sections=sections,
                machine=machine.describe(),
                total_s=round(time.perf_counter() - t0, 1))
  with open(os.path.join(_OUT.value, "accelerator.json"), "w") as f:
    json.dump(report, f, indent=1)
  with open(os.path.join(_OUT.value, "accelerator.md"), "w") as f:
    f.write(markdown(report))


if __name__ == "__main__":
  app.run(main)
