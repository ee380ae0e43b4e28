"""Data parallelism and multi-host: the same losses as one device.

Several CPU devices are simulated with XLA_FLAGS in subprocesses, so the rest of
the suite keeps its single device.
"""

import os
import socket
import subprocess
import sys

import jax
import numpy as onp
import pytest

from seqjax import experiment
from seqjax import metric_log

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow  # every test starts launcher processes on simulated devices
TINY = ["--config.model.width=16", "--config.train.steps=6",
        "--config.train.batch_size=8", "--config.train.log_every=1",
        "--config.train.checkpoint_every=3", "--config.train.eval_every=3",
        "--config.train.eval_batches=1", "--config.train.warmup_steps=1"]


def devices_env(devices):
  """This process's environment (with conftest's compile flags) on `devices`
  simulated CPU devices."""
  return dict(os.environ, XLA_FLAGS=" ".join(filter(None, [
      os.environ.get("XLA_FLAGS", ""),
      f"--xla_force_host_platform_device_count={devices}"])))


def launch(workdir, devices, *args, wait=True, model="lstm"):
  env = devices_env(devices)
  proc = subprocess.Popen(
      [sys.executable, os.path.join(ROOT, "launch.py"),
       f"--config=experiments/copy_memory.py:quick,delay=4,model={model}", *TINY, *args,
       f"--workdir={workdir}"], cwd=ROOT, env=env, text=True,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  if wait:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
  return proc


def wait_for(*procs):
  for proc in procs:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]


def test_data_parallel_transformer_matches_one_device(tmp_path):
  one, four = str(tmp_path / "one"), str(tmp_path / "four")
  # Independent runs in their own workdirs: started together, waited for.
  wait_for(*[launch(workdir, devices, wait=False, model="transformer")
             for workdir, devices in ((one, 1), (four, 4))])
  assert len(train_losses(one)) == 6
  onp.testing.assert_allclose(train_losses(four), train_losses(one), rtol=2e-6)


def train_losses(workdir):
  return [r["loss"] for r in metric_log.read(os.path.join(workdir, "metrics.jsonl"))
          if r["split"] == "train"]


def free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_data_parallel_and_multi_host_match_one_device(tmp_path):
  one, four = str(tmp_path / "one"), str(tmp_path / "four")
  fsdp = str(tmp_path / "fsdp")
  # Independent runs in their own workdirs: started together, waited for.
  wait_for(launch(one, 1, wait=False), launch(four, 4, wait=False),
           launch(fsdp, 4, "--config.mesh.params=fsdp",
                  "--config.mesh.min_shard_size=1", wait=False))
  assert len(train_losses(one)) == 6
  onp.testing.assert_allclose(train_losses(four), train_losses(one), rtol=2e-6)
  onp.testing.assert_allclose(train_losses(fsdp), train_losses(one), rtol=2e-6)

  # Two processes with two devices each, talking through gloo on localhost.
  multi = str(tmp_path / "multi")
  address = f"localhost:{free_port()}"
  procs = [launch(multi, 2, f"--coordinator_address={address}",
                  "--num_processes=2", f"--process_id={i}", wait=False)
           for i in range(2)]
  wait_for(*procs)
  onp.testing.assert_allclose(train_losses(multi), train_losses(one), rtol=2e-6)
  assert len(train_losses(multi)) == 6, "only process 0 writes the log"
  restored = experiment.load(multi, 6)  # restored by this single process
  reference = experiment.load(four, 6)
  for a, b in zip(jax.tree_util.tree_leaves(restored.params),
                  jax.tree_util.tree_leaves(reference.params)):
    onp.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


LAYOUTS = """
import jax
from seqjax import parallel
mesh = parallel.make_mesh(parallel.MeshConfig(model=2, params="fsdp", min_shard_size=16), 4)
cfg = parallel.MeshConfig(model=2, params="fsdp", min_shard_size=16)
for shape in [(8,), (64, 32), (6, 10), (3, 64), (4, 4)]:
  print(shape, tuple(parallel.array_sharding(mesh, cfg, shape).spec))
"""


def test_layouts_follow_shapes():
  env = devices_env(4)
  out = subprocess.run([sys.executable, "-c", LAYOUTS], cwd=ROOT, env=env,
                       capture_output=True, text=True, check=True).stdout
  assert out.splitlines() == [
      "(8,) (None,)",                   # fewer than min_shard_size elements
      "(64, 32) ('data', 'model')",      # output dim over model, largest free over data
      "(6, 10) ('data', 'model')",
      "(3, 64) (None, 'model')",         # 3 does not divide over 2 data shards
      "(4, 4) ('data', 'model')",
  ]


def test_batch_that_does_not_divide_over_data_shards_is_refused(tmp_path):
  workdir = str(tmp_path / "run")
  env = devices_env(4)
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "launch.py"),
       "--config=experiments/copy_memory.py:quick,delay=4", *TINY,
       "--config.train.batch_size=6", f"--workdir={workdir}"],
      cwd=ROOT, env=env, capture_output=True, text=True)
  assert result.returncode == 2
  assert "train.batch_size=6 (the global batch) must divide evenly over the 4" in result.stderr
  assert not os.path.exists(workdir)
