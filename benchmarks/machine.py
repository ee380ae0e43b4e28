"""The machine a benchmark ran on, and an AVX2-only CPU emulated on an AVX-512 one.

Every benchmark script calls `setup()` first in its `main` and prints its
results with `emit(row)`, which adds `describe()` under "machine": the CPU model, its vector
extensions (from /proc/cpuinfo), the ISA setting, the load average, the jax,
jaxlib (and torch, when loaded) versions and XLA_FLAGS.

`--isa=avx2` (any script) emulates a CPU without AVX-512 on an AVX-512 host,
same cores, caches, memory and clock:
  - XLA:CPU: `--xla_cpu_max_isa=AVX2` for the code LLVM generates (fusions,
    loops), and YNNPACK, the library that runs XLA:CPU's matmuls, told its CPU
    has AVX2 and FMA3 and nothing above (YNNPACK reads the CPU once, through
    cpuinfo, and has no setting; `limit_ynnpack_to_avx2` overwrites the value
    it read, located through jaxlib's symbol table);
  - ONEDNN_MAX_CPU_ISA=AVX2 for the whole process: the oneDNN sgemm behind
    XLA:CPU's Eigen matmuls (the dots YNNPACK does not take; Eigen's custom
    contraction kernels in jaxlib) and PyTorch's oneDNN;
  - PyTorch: also ATEN_CPU_CAPABILITY=avx2 and MKL_ENABLE_INSTRUCTIONS=AVX2,
    set before torch is imported.
It is an emulation: a real AVX2-only CPU has other caches and clocks.
"""

import ctypes
import json
import os
import platform
import subprocess
import sys

from absl import flags
import jax
import jaxlib

from seqjax import sweep

_ISA = flags.DEFINE_enum(
    "isa", "native", ["native", "avx2"],
    "native: the CPU as it is; avx2: emulate a CPU without AVX-512 (XLA:CPU, "
    "YNNPACK and PyTorch limited to AVX2 + FMA3).")

VECTOR_PREFIXES = ("sse", "ssse3", "avx", "fma", "f16c", "amx")
AVX2_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
            "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
# YNNPACK's arch_flag bits (XNNPACK ynnpack/base/arch.h): sse2 ... avx2 (1 << 5),
# fma3 (1 << 6); the AVX-512 and AMX bits lie above.
YNN_AVX2_FMA3 = (1 << 7) - 1
_YNN_FUNCTION = "_ZN3ynn24get_supported_arch_flagsEv"
_YNN_VALUE = "_ZZN3ynn24get_supported_arch_flagsEvE5flags"


def cpu() -> dict:
  """Model, vendor, family/model, cores and vector extensions of this CPU."""
  fields = {}
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if not line.strip():
          break  # the first processor is enough
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
  except OSError:  # not Linux
    pass
  extensions = sorted(flag for flag in fields.get("flags", "").split()
                      if flag.startswith(VECTOR_PREFIXES))
  return dict(model=fields.get("model name", platform.processor()),
              vendor=fields.get("vendor_id", ""),
              family=fields.get("cpu family", ""), model_number=fields.get("model", ""),
              cores=len(os.sched_getaffinity(0)), vector_extensions=extensions,
              avx512="avx512f" in extensions)


def setup() -> None:
  """Call first in a benchmark's `main`: applies seqjax's start-up XLA:CPU
  defaults, as launch.py does, and with --isa=avx2 the emulation. Refuses to
  run after JAX's backend has started (XLA_FLAGS would be ignored)."""
  from jax._src import xla_bridge  # pylint: disable=import-outside-toplevel
  if xla_bridge.backends_are_initialized():
    raise RuntimeError("machine.setup() must run before JAX's first computation.")
  if _ISA.value == "avx2":
    os.environ["XLA_FLAGS"] = " ".join(filter(None, [
        os.environ.get("XLA_FLAGS", ""), "--xla_cpu_max_isa=AVX2"]))
    os.environ.update(AVX2_ENV)
    limit_ynnpack_to_avx2()


def single_threaded_eigen() -> None:
  """XLA:CPU's Eigen on one thread, as a sweep runs its groups: a vmapped group
  step can hang multi-threaded (docs/benchmarks.md, "A trial group that
  hangs"). Call right after `setup()`, for scripts that run group steps; it
  changes nothing on a GPU or TPU."""
  os.environ["XLA_FLAGS"] = " ".join(filter(None, [
      os.environ.get("XLA_FLAGS", ""), sweep.SINGLE_THREADED_EIGEN]))


def limit_ynnpack_to_avx2() -> None:
  """Makes YNNPACK inside jaxlib see a CPU with AVX2 and FMA3 and nothing above.

  YNNPACK caches the CPU's features in a function-local static on first use;
  this calls that function (so the cache is filled) and overwrites the value.
  Raises RuntimeError when this jaxlib has no such symbols (another version)."""
  lib = os.path.join(os.path.dirname(jaxlib.__file__), "libjax_common.so")
  try:
    listing = subprocess.run(["nm", lib], capture_output=True, text=True,
                             check=True).stdout
  except (OSError, subprocess.CalledProcessError) as e:
    raise RuntimeError(f"--isa=avx2 needs `nm` and {lib}: {e}") from e
  addresses = {}
  for line in listing.splitlines():
    parts = line.split()
    if len(parts) == 3 and parts[2] in (_YNN_FUNCTION, _YNN_VALUE):
      addresses[parts[2]] = int(parts[0], 16)
  if len(addresses) != 2:
    raise RuntimeError(f"--isa=avx2: YNNPACK's CPU check is not in {lib} "
                       f"(jaxlib {jaxlib.__version__}); cannot emulate.")
  with open("/proc/self/maps") as f:
    base = next(int(line.split("-")[0], 16) for line in f
                if line.rstrip().endswith(lib) and line.split()[2] == "00000000")
  read = ctypes.CFUNCTYPE(ctypes.c_uint64)(base + addresses[_YNN_FUNCTION])
  native = read()
  ctypes.c_uint64.from_address(base + addresses[_YNN_VALUE]).value = (
      native & YNN_AVX2_FMA3)
  if read() != native & YNN_AVX2_FMA3:
    raise RuntimeError("--isa=avx2: YNNPACK's CPU features could not be set.")


def describe() -> dict:
  """What a benchmark's JSON records about the machine and the software."""
  result = dict(cpu=cpu(), isa=_ISA.value, emulated=_ISA.value != "native",
                load_average=[round(x, 2) for x in os.getloadavg()],
                jax=jax.__version__, jaxlib=jaxlib.__version__,
                xla_flags=os.environ.get("XLA_FLAGS", ""))
  torch = sys.modules.get("torch")
  if torch is not None:
    result.update(torch=torch.__version__,
                  torch_cpu_capability=torch.backends.cpu.get_cpu_capability(),
                  torch_threads=torch.get_num_threads())
  return result


def emit(row: dict) -> None:
  """Prints one JSON line: `row` and, under "machine", `describe()`."""
  print(json.dumps(dict(row, machine=describe())), flush=True)
