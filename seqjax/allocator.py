"""Keep freed memory in the process instead of handing it back to the kernel.

XLA's CPU runtime allocates the temporary buffer of a compiled program with
malloc on every execution and frees it afterwards. glibc serves a block above
its mmap threshold (at most 32 MiB) with a fresh mmap, and any block above
64 MiB requested from a worker thread's arena likewise, so every execution of a
program whose temporaries exceed that page-faults its whole buffer in again
(the kernel zeroes each 4 KiB page): 22,000 faults and about 40 ms of system
time per step for a group of 3 LSTMs of width 128 at length 100 and batch 32
(85 MiB of temporaries), which a solo step (27 MiB) never pays. That made a
trial group of recurrent models cost more per trial-step than its solo runs
(docs/benchmarks.md, "Trial groups: the group step against N solo steps").

`keep_freed_memory()` sets glibc's malloc to serve every thread from the main
arena (M_ARENA_MAX=1), never by mmap (M_MMAP_MAX=0), and to keep up to 1 GiB of
freed memory at the top of the heap (M_TRIM_THRESHOLD): the buffer is then
reused, without faults, from the second execution on. It must run before JAX
starts its CPU backend's threads (each thread takes its arena on its first
malloc), so seqjax calls it on import. It changes speed and resident memory
(the process keeps its peak), never results. Not glibc (macOS), or
SEQJAX_KEEP_FREED_MEMORY=0 in the environment: nothing is changed.
"""

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
  """Sets glibc's malloc as above; returns whether it did."""
  if os.environ.get("SEQJAX_KEEP_FREED_MEMORY", "1") == "0":
    return False
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    mallopt = libc.mallopt
    gnu_get_libc_version = libc.gnu_get_libc_version  # glibc only
  except (OSError, AttributeError):
    return False
  del gnu_get_libc_version
  mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
  return all([mallopt(M_ARENA_MAX, 1), mallopt(M_MMAP_MAX, 0),
              mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)])
