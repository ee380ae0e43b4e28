"""DIR/.lock: a run directory is trained by one process at a time.

The lock file holds `host pid start` of the process that trains (`start` is the
process's start time, so a pid reused by another process is not mistaken for
the holder). A lock is stale, and taken over, only when it names this host and
its process is gone; a lock of another host is never taken over.
"""

import os
import socket

NAME = ".lock"


def _start_time(pid: int) -> str | None:
  """The start time of process `pid` (clock ticks since boot), None if gone."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[19]
  except (OSError, IndexError):
    return None


def _alive(pid: int, start: str) -> bool:
  if os.path.exists("/proc/self/stat"):
    return _start_time(pid) == start
  try:  # no /proc: the pid alone
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def holder(workdir: str) -> dict | None:
  """Who holds the lock of `workdir`: {host, pid, live}, or None if unheld.

  `live` is False for a stale lock of this host, None when it cannot be known
  (another host)."""
  try:
    with open(os.path.join(workdir, NAME)) as f:
      host, pid, start = f.read().split()
  except FileNotFoundError:
    return None
  except (OSError, ValueError):  # written by an older seqjax, or cut short
    return dict(host="?", pid=0, live=None)
  live = _alive(int(pid), start) if host == socket.gethostname() else None
  return dict(host=host, pid=int(pid), live=live)


def describe(info: dict) -> str:
  state = {True: "running", False: "gone", None: "state unknown"}[info["live"]]
  return f"process {info['pid']} on host {info['host']} ({state})"


class RunLock:
  """Held by this process while it trains `workdir`."""

  def __init__(self, workdir: str):
    self.workdir = workdir
    self.path = os.path.join(workdir, NAME)
    self.held = False

  def acquire(self) -> bool:
    """Takes the lock (or a stale one); False if another live process holds it."""
    os.makedirs(self.workdir, exist_ok=True)
    for _ in range(2):
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        info = holder(self.workdir)
        if info is None:
          continue  # released in between
        if info["live"] is not False:
          return False
        os.remove(self.path)
        continue
      pid = os.getpid()
      with os.fdopen(fd, "w") as f:
        f.write(f"{socket.gethostname()} {pid} {_start_time(pid) or 0}\n")
      self.held = True
      return True
    return False

  def release(self) -> None:
    if self.held:
      os.remove(self.path)
      self.held = False
