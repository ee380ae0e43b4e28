"""The Long Range Arena (Tay et al. 2021), whole: six tasks, every architecture.

  Quick (a 2-core CPU: Pathfinder 32 and ListOps, small models, short runs):
  python launch.py --config=experiments/lra.py:quick --mode=sweep --jobs=2 --workdir=runs/lra_quick

  Full (LRA's model sizes; the file tasks need their folders):
  python launch.py --config=experiments/lra.py:imdb_dir=/data/aclImdb,aan_dir=/data/lra_release/tsv_data,cifar10_dir=/data/cifar-10-batches-bin \
      --mode=sweep --workdir=runs/lra

  One run: python launch.py --config=experiments/lra.py:task=pathfinder,model=lstm --workdir=runs/pf_lstm

Arguments: task (listops, imdb (Text), aan (Retrieval), cifar10 (Image), pathfinder (32x32),
pathfinder64, pathx (128x128)), model (a name in seqjax.models.MODELS), imdb_dir (the aclImdb
folder), aan_dir (the folder of new_aan_pairs.{train,eval,test}.tsv), cifar10_dir (the
cifar-10-batches-bin folder), quick. The file tasks read their folder; without it a run of that
task stops with a ConfigError naming the files and where they come from, and the sweep leaves the
task out (it logs which and why). Pathfinder and ListOps are generated and cached under
$SEQJAX_DATA (default ~/.cache/seqjax).

Model sizes and training are LRA's vanilla Transformer configs (google-research/long-range-arena,
`*/configs/*base*.py`): width (emb_dim), layers, heads and MLP ratio (mlp_dim / emb_dim), batch,
steps, weight decay, dropout, and the peak learning rate. LRA's `qkv_dim` smaller than emb_dim
(Pathfinder, Image) has no counterpart here (the head dimension is width / heads). LRA's
"constant * linear_warmup * rsqrt_decay" schedule (ListOps, Text, Retrieval, base rate 0.05)
peaks at 0.05 / sqrt(warmup); here it is that peak with warmup then cosine decay. The other
architectures get the same width, layers, batch, steps and schedule (the experiment-wide
settings apply to every model that has the field).
"""

from absl import logging
import ml_collections

from seqjax import configs
from seqjax import experiment_config
from seqjax import sweep
from seqjax import tasks

ARCHITECTURES = ("transformer", "lstm", "gru", "lru", "mingru")
FILE_TASKS = {"imdb": "imdb_dir", "aan": "aan_dir", "cifar10": "cifar10_dir"}
GENERATED = ("listops", "pathfinder", "pathfinder64", "pathx")
QUICK_TASKS = ("pathfinder", "listops")

# LRA's Transformer: width, layers, heads, mlp ratio, dropout; training.
LRA = {
    "listops": dict(model=dict(width=512, num_layers=6, num_heads=8, mlp_ratio=4),
                    train=dict(batch_size=32, steps=5000, warmup_steps=1000,
                               learning_rate=0.05 / 1000 ** 0.5, weight_decay=0.1)),
    "imdb": dict(model=dict(width=256, num_layers=4, num_heads=4, mlp_ratio=4),
                 train=dict(batch_size=32, steps=20000, warmup_steps=8000,
                            learning_rate=0.05 / 8000 ** 0.5, weight_decay=0.1)),
    # LRA's warmup (8,000) is longer than its run (5,000 steps); here 1,000.
    "aan": dict(model=dict(width=128, num_layers=4, num_heads=4, mlp_ratio=4),
                train=dict(batch_size=32, steps=5000, warmup_steps=1000,
                           learning_rate=0.05 / 8000 ** 0.5, weight_decay=0.1)),
    "cifar10": dict(model=dict(width=32, num_layers=1, num_heads=1, mlp_ratio=2,
                               dropout=0.3),
                    train=dict(batch_size=256, steps=175 * 200, warmup_steps=175,
                               learning_rate=5e-4, weight_decay=0.0)),
    "pathfinder": dict(model=dict(width=128, num_layers=1, num_heads=4, mlp_ratio=1,
                                  dropout=0.2, pooling="mean"),
                       train=dict(batch_size=512, steps=312 * 200, warmup_steps=312,
                                  learning_rate=1e-3, weight_decay=0.0)),
}
LRA["pathfinder64"] = LRA["pathx"] = LRA["pathfinder"]
RESOLUTION = {"pathfinder": 32, "pathfinder64": 64, "pathx": 128}
QUICK_MODEL = dict(width=32, num_layers=1, num_heads=2, mlp_ratio=2, dropout=0.0)
QUICK_TRAIN = dict(batch_size=32, steps=300, warmup_steps=20, learning_rate=3e-3,
                   weight_decay=0.0, eval_every=150, checkpoint_every=150,
                   eval_batches=4)


def task_section(name: str, args) -> ml_collections.ConfigDict:
  if name == "listops":
    if args.quick:
      return tasks.task_config("listops", max_length=100, min_length=20,
                               num_train=2000, num_valid=200, num_test=200)
    return tasks.task_config("listops")
  if name in RESOLUTION:
    sizes = (dict(num_train=2000, num_valid=200, num_test=200) if args.quick
             else {})
    return tasks.task_config("pathfinder", resolution=RESOLUTION[name], **sizes)
  return tasks.task_config(name, data_dir=args[FILE_TASKS[name]])


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = configs.parse_arg(arg, task="pathfinder", model="transformer",
                           imdb_dir="", aan_dir="", cifar10_dir="", quick=False)
  configs.check_choice("arg", "task", args.task, (*GENERATED, *FILE_TASKS))
  lra = LRA[args.task]
  return experiment_config.build(
      task_section(args.task, args), args.model, args.quick,
      model_settings=lra["model"], quick_model=QUICK_MODEL,
      train=dict(lra["train"], eval_every=1000, checkpoint_every=1000,
                 eval_batches=20),
      quick_train=QUICK_TRAIN)


def available_tasks(args) -> list[str]:
  """The tasks a sweep runs: the generated ones, and each file task whose folder
  is given (the others are logged as left out)."""
  names = list(QUICK_TASKS if args.quick else ("listops", "pathfinder", "pathx"))
  missing = [t for t, key in FILE_TASKS.items() if not args[key]]
  if missing:
    logging.warning("LRA sweep: leaving out %s (give %s to include them).",
                    ", ".join(missing),
                    ", ".join(FILE_TASKS[t] + "=FOLDER" for t in missing))
  return names + [t for t in FILE_TASKS if t not in missing]


# No SWEEP_AXIS: tasks x models, reported as tables.
def get_sweep(arg: str | None = None) -> list[dict]:
  args = configs.parse_arg(arg, task=str, model=str, imdb_dir="", aan_dir="",
                           cifar10_dir="", quick=False)
  return sweep.product(
      sweep.values("arg.task", available_tasks(args)),
      sweep.values("arg.model", ("transformer", "lstm", "lru") if args.quick
                   else ARCHITECTURES),
      sweep.values("train.seed", [0] if args.quick else [0, 1]))
