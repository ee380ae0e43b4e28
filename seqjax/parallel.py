"""Devices: the mesh, how arrays are laid out on it, and multi-host start-up.

The same config runs on one CPU, 8 GPUs or a TPU pod slice; only `config.mesh`
and the launch flags change. The mesh has two axes:

  data   the batch is split over it; with `params="fsdp"` parameters and optimizer
         state are split over it too (each device holds a slice, XLA gathers them
         for the matmuls: FSDP / ZeRO-3 style);
  model  large weight matrices are split along their last (output) dimension over
         it, and XLA inserts the collectives (tensor sharding of the bigger
         Transformer weights).

Layouts are chosen from shapes alone, so an Adam moment gets the same layout as
its parameter. A dimension is split only if it divides evenly, and arrays smaller
than `min_shard_size` elements stay replicated.

Multi-host: `initialize(...)` starts JAX's distributed runtime, from explicit
flags or from what JAX detects (TPU, SLURM). Each process generates only its own
slice of every batch (the batch is produced by a jitted function with a sharded
output, and the PRNG is partitionable), writes nothing but checkpoints unless it
is process 0, and Orbax writes checkpoints from all processes together.
"""

import dataclasses
import os

from absl import logging
import jax
import numpy as onp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from seqjax import configs
from seqjax.errors import ConfigError

PARAM_LAYOUTS = ("replicated", "fsdp")


@dataclasses.dataclass(frozen=True)
class MeshConfig:
  """`config.mesh`: how devices are arranged."""
  data: int = -1               # devices on the data axis; -1: all that `model` leaves
  model: int = 1               # devices on the model axis
  params: str = "replicated"   # replicated | fsdp: parameters split over `data`
  min_shard_size: int = 2**14  # arrays with fewer elements are never split

  def __post_init__(self):
    configs.check_choice("mesh", "params", self.params, PARAM_LAYOUTS)
    configs.check_positive("mesh", model=self.model,
                           min_shard_size=self.min_shard_size)
    if self.data != -1 and self.data < 1:
      raise ConfigError(f"mesh.data must be -1 (all devices) or positive, got "
                        f"{self.data!r}.")


def mesh_defaults():
  import ml_collections  # pylint: disable=import-outside-toplevel
  return ml_collections.ConfigDict(dataclasses.asdict(MeshConfig()))


def mesh_config(section) -> MeshConfig:
  import ml_collections  # pylint: disable=import-outside-toplevel
  if section is None:
    return MeshConfig()
  return configs.to_dataclass({"mesh": MeshConfig}, ml_collections.ConfigDict(
      {"name": "mesh", **section.to_dict()}), "mesh")


def make_mesh(cfg: MeshConfig, batch_size: int) -> Mesh:
  """The (data, model) mesh over all devices of all processes."""
  n = jax.device_count()
  if n % cfg.model:
    raise ConfigError(f"mesh.model={cfg.model} does not divide the {n} devices.")
  data = n // cfg.model if cfg.data == -1 else cfg.data
  if data * cfg.model != n:
    raise ConfigError(
        f"mesh.data={cfg.data} x mesh.model={cfg.model} must equal the number "
        f"of devices, {n}; use mesh.data=-1 to take all that model leaves.")
  if batch_size % data:
    raise ConfigError(
        f"train.batch_size={batch_size} (the global batch) must divide evenly "
        f"over the {data} data shards (mesh.data); use a multiple of {data}.")
  devices = onp.asarray(jax.devices()).reshape(data, cfg.model)
  return Mesh(devices, ("data", "model"))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """The leading (batch) dimension split over `data`."""
  return NamedSharding(mesh, P("data"))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def put(x, sharding: NamedSharding) -> jax.Array:
  """The host array `x` (the same in every process) laid out as `sharding` over
  the devices of all processes (each process places its own shards)."""
  x = onp.asarray(x)
  return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def stacked(sharding: NamedSharding) -> NamedSharding:
  """The layout of N arrays of layout `sharding` stacked on a new leading axis
  (a trial group's run axis), which is never split."""
  return NamedSharding(sharding.mesh, P(None, *sharding.spec))


def array_sharding(mesh: Mesh, cfg: MeshConfig, shape: tuple) -> NamedSharding:
  """The layout of one parameter-like array, from its shape alone."""
  spec = [None] * len(shape)
  if int(onp.prod(shape, dtype=onp.int64)) < cfg.min_shard_size:
    return NamedSharding(mesh, P(*spec))
  sizes = dict(zip(mesh.axis_names, mesh.devices.shape))
  if sizes["model"] > 1 and len(shape) >= 2 and shape[-1] % sizes["model"] == 0:
    spec[-1] = "model"
  if cfg.params == "fsdp" and sizes["data"] > 1:
    free = [i for i in range(len(shape)) if spec[i] is None
            and shape[i] % sizes["data"] == 0]
    if free:
      spec[max(free, key=lambda i: shape[i])] = "data"
  return NamedSharding(mesh, P(*spec))


def state_shardings(mesh: Mesh, cfg: MeshConfig, abstract_state):
  return jax.tree_util.tree_map(
      lambda x: array_sharding(mesh, cfg, x.shape), abstract_state)


def initialize(coordinator_address: str | None, num_processes: int | None,
               process_id: int | None) -> None:
  """Starts JAX's distributed runtime when there is more than one process.

  Explicit flags win; otherwise JAX's own detection is used where the
  environment says there are several processes (SLURM, TPU pod slices).
  """
  explicit = coordinator_address is not None
  detected = (int(os.environ.get("SLURM_NTASKS", "1")) > 1 or
              "," in os.environ.get("TPU_WORKER_HOSTNAMES", ""))
  if not (explicit or detected):
    return
  if explicit and (num_processes is None or process_id is None):
    raise ConfigError("--coordinator_address needs --num_processes and "
                      "--process_id too.")
  if jax.config.jax_platforms in (None, "", "cpu") and not has_accelerator():
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if explicit:
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
  else:
    jax.distributed.initialize()
  logging.info("process %d of %d, %d local of %d devices", jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())


def has_accelerator() -> bool:
  """True if a GPU or TPU plugin is installed (checked without starting JAX)."""
  import importlib.util  # pylint: disable=import-outside-toplevel
  return any(importlib.util.find_spec(name) is not None
             for name in ("jax_cuda12_plugin", "jax_cuda13_plugin", "libtpu"))


def is_writer() -> bool:
  """Only process 0 writes logs, summaries and reports."""
  return jax.process_index() == 0
