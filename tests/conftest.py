"""Shared test set-up: strict shapes, quiet logs, tiny configs."""

import os
import sys
import tempfile

from absl import logging
import jax
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# The tests compile with XLA's backend (LLVM) optimisations off and with its
# older loop emitters for fusions instead of the MLIR fusion emitters, in this
# process and the launcher subprocesses it starts (they inherit the
# environment): the same programs, compiled in less CPU time, whose machine code
# is slower on sizes the tests do not have. The level: tests/test_train.py and
# test_transformer.py 109 -> 73 CPU-seconds. The emitters: a compile of a tiny
# eager op 32 -> 22 ms, the whole suite 1,448 -> 1,076 worker-seconds (AMD EPYC
# VM, 2026-12-06). Numbers agree to float32 rounding: the golden step passes
# unchanged at its 1e-5 tolerance. Set before JAX's backend starts.
os.environ["XLA_FLAGS"] = " ".join(filter(None, [
    os.environ.get("XLA_FLAGS", ""), "--xla_backend_optimization_level=0",
    "--xla_cpu_use_fusion_emitters=false"]))
jax.config.update("jax_numpy_rank_promotion", "raise")
logging.set_verbosity(logging.WARNING)

# One persistent compilation cache for the whole test session, shared by the
# xdist workers and the launcher subprocesses the tests start (they inherit
# the environment): the same tiny programs are compiled once, not in every
# test. A cached executable is the program compiled before, so no number
# changes; a sweep given JAX_COMPILATION_CACHE_DIR uses it instead of its own.
_CACHE = os.path.join(
    tempfile.gettempdir(),
    f"seqjax-test-jax-cache-{os.environ.get('PYTEST_XDIST_TESTRUNUID', os.getpid())}")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs",
                  float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))


@pytest.fixture
def tiny_config():
  """A copy-memory LSTM run that trains in about a second."""
  import helpers  # pylint: disable=import-outside-toplevel
  return helpers.tiny_copy_memory_config()


def pytest_collection_modifyitems(config, items):
  """Marks `slow` the tests listed in tests/slow_tests.txt (by measured time)."""
  del config
  with open(os.path.join(ROOT, "tests", "slow_tests.txt")) as f:
    listed = {line.strip() for line in f if line.strip() and not line.startswith("#")}
  for item in items:
    if item.nodeid in listed:
      item.add_marker(pytest.mark.slow)


def pytest_configure(config):
  config.addinivalue_line(
      "markers", "accelerator: needs a GPU (skipped without one); run by "
      "`python -m benchmarks.accelerator`")
