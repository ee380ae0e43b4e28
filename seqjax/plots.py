"""Matplotlib figures (Agg backend, PNG files).

The plots of a sweep's report draw every series with its own marker and line
style, hollow markers the larger the earlier the series, so that lines which
coincide (two models both at accuracy 1.0) stay visible; the figure says so
under its axes (`SERIES_NOTE`). Their x axes are ticked at the lengths tried,
in plain numbers, and the legend stands outside the axes. Each function returns
its (closed) Figure, for tests to inspect.
"""

import itertools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position
from matplotlib import ticker  # pylint: disable=wrong-import-position
import numpy as onp  # pylint: disable=wrong-import-position

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":")
SERIES_NOTE = ("Coinciding lines stay visible: each series has its own marker "
               "and line style.")


def curves(series: dict, x: str, y: str, path: str, title: str = "",
           ylabel: str = "") -> None:
  """One line per label of `series` ({label: {x: [...], y: [...]}}), log y."""
  fig, ax = plt.subplots(figsize=(6, 4))
  for label, data in series.items():
    values = onp.asarray(data[y], float)
    ax.plot(data[x], onp.where(values > 0, values, onp.nan), label=label)
  ax.set_yscale("log")
  ax.set_xlabel(x)
  ax.set_ylabel(ylabel or y)
  ax.set_title(title)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def curves_with_baselines(series: dict, baselines: dict, path: str,
                          title: str = "") -> None:
  """Training loss against step, a line per label of `series` ({label: {"step",
  "loss"}}), and a dashed horizontal line per `baselines` ({label: value})."""
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for label, data in series.items():
    ax.plot(data["step"], data["loss"], label=label, linewidth=1)
  for label, value in baselines.items():
    ax.axhline(value, color="black", linestyle="--", linewidth=0.8)
    ax.annotate(label, (0, value), fontsize=7, va="bottom")
  ax.set_yscale("log")
  ax.set_xlabel("step")
  ax.set_ylabel("training loss (mean over seeds)")
  ax.set_title(title)
  ax.legend(fontsize=7, ncol=2)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def validation_curves(series: dict, levels: dict, path: str, title: str = "",
                      ylabel: str = "", log: bool = False) -> plt.Figure:
  """A validation metric against step, a line per label of `series` ({label:
  (steps, values)}; a value that is None is not drawn), with `series_style`,
  and a dashed horizontal line per `levels` ({label: value}: chance, solved)."""
  fig, ax = plt.subplots(figsize=(9, 4.5))
  for i, (label, (steps, values)) in enumerate(series.items()):
    style = dict(series_style(i), markersize=max(7 - i // 4, 3), linewidth=1)
    ax.plot(steps, [onp.nan if v is None else v for v in values], label=label,
            **style)
  for label, value in levels.items():
    ax.axhline(value, color="black", linestyle="--", linewidth=0.8)
    ax.annotate(label, (0, value), fontsize=7, va="bottom")
  if log:
    ax.set_yscale("log")
  ax.set_xlabel("step")
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5))
  ax.text(0, -0.16, SERIES_NOTE, fontsize=6, transform=ax.transAxes)
  fig.savefig(path, dpi=110, bbox_inches="tight")
  plt.close(fig)
  return fig


def metric_vs_width(accuracy: dict, path: str, title: str = "") -> plt.Figure:
  """Accuracy against model width ({(model, length, width): value}): a panel
  per length, a line per model (`series_style`), x ticked at the widths tried,
  the legend outside."""
  lengths = sorted({l for _, l, _ in accuracy})
  fig, axes = plt.subplots(1, len(lengths), figsize=(4 * len(lengths) + 1, 3.5),
                           squeeze=False)
  for ax, length in zip(axes[0], lengths):
    for i, model in enumerate(sorted({m for m, _, _ in accuracy})):
      pts = sorted((w, v) for (m, l, w), v in accuracy.items()
                   if m == model and l == length)
      ax.plot([w for w, _ in pts], [v for _, v in pts], label=model,
              **series_style(i))
    widths = sorted({w for (_, l, w) in accuracy if l == length})
    ax.set_xscale("log", base=2)
    ax.set_xticks(widths, [f"{w:g}" for w in widths])
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("width")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"length {length}")
  return _finish(fig, list(axes[0]), path, title)


def attention_maps(maps: list, tokens, path: str, title: str = "") -> None:
  """Heat maps of the weights of the first example: a row per layer, a column
  per head; queries down, keys across, labelled with the input tokens."""
  rows, cols = len(maps), max(w.shape[1] for _, w in maps)
  fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
  labels = [str(int(t)) for t in onp.asarray(tokens).reshape(-1)[:maps[0][1].shape[-1]]]
  for r, (name, w) in enumerate(maps):
    for h in range(cols):
      ax = axes[r][h]
      if h >= w.shape[1]:
        ax.axis("off")
        continue
      ax.imshow(onp.asarray(w[0, h], float), cmap="viridis", vmin=0, vmax=1)
      ax.set_title(f"{name.split('/')[-2] if '/' in name else name} head {h}",
                   fontsize=7)
      if len(labels) <= 40:
        ax.set_xticks(range(len(labels)), labels, fontsize=5)
        ax.set_yticks(range(len(labels)), labels, fontsize=5)
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _by_model(points: list) -> dict:
  """A line per model and setting (a point's `label`, else its model)."""
  lines = {}
  for p in points:
    lines.setdefault(p.get("label") or p["model"], []).append(p)
  return lines


def series_style(index: int) -> dict:
  """The plot keywords of series `index`: a marker and a line style of its own
  (8 markers; 4 styles, so pairs differ in one or both), hollow and larger for
  earlier series so that coinciding markers nest instead of hiding each other."""
  return dict(marker=MARKERS[index % len(MARKERS)],
              linestyle=LINESTYLES[index % len(LINESTYLES)],
              markersize=max(12 - index, 4), markerfacecolor="none",
              markeredgewidth=1.5, linewidth=1.5)


def _line_with_band(ax, x, means, mins, maxs, label: str, index: int) -> None:
  """A line of means with markers (`series_style(index)`), and its min-max band
  over seeds shaded."""
  line, = ax.plot(x, means, label=label, **series_style(index))
  ax.fill_between(x, mins, maxs, color=line.get_color(), alpha=0.15)


def _length_axis(ax, lengths, key: str) -> None:
  """x: the lengths tried, each a tick labelled as a plain number (log-spaced
  when all are positive)."""
  tried = sorted({v for v in lengths if _finite(v)})
  _log_scale_if_positive(ax, "x", tried)
  ax.set_xticks(tried, [f"{v:g}" for v in tried])
  ax.xaxis.set_minor_locator(ticker.NullLocator())
  ax.set_xlabel(f"dependency length ({key})")


def _finish(fig, axes, path: str, title: str) -> plt.Figure:
  """The legend outside the axes (right of the last), the series note under
  them, the title; saved to `path` and closed."""
  axes[-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                  borderaxespad=0.0)
  fig.suptitle(title)
  fig.text(0.01, 0.0, SERIES_NOTE, fontsize=7, ha="left", va="top",
           color="dimgray")
  fig.tight_layout()
  fig.savefig(path, dpi=120, bbox_inches="tight")
  plt.close(fig)
  return fig


def metric_vs_length(data: dict, path: str, title: str = "") -> plt.Figure:
  """Test metric against dependency length, a line per model (mean, and the
  min-max band over seeds), the chance level and each baseline of this metric
  (`data["baselines"]`) dashed."""
  fig, ax = plt.subplots(figsize=(7, 4))
  for i, (model, pts) in enumerate(_by_model(data["points"]).items()):
    _line_with_band(ax, [p["length"] for p in pts], [p["test_mean"] for p in pts],
                    [p["test_min"] for p in pts], [p["test_max"] for p in pts],
                    model, i)
  ax.axhline(data["chance"], color="gray", linestyle="--", label="chance")
  for name, baseline in data.get("baselines", {}).items():
    if baseline["metric"] == data["metric"]:
      ax.axhline(baseline["value"], color="black", linestyle="--", linewidth=0.8,
                 label=name)
  _length_axis(ax, [p["length"] for p in data["points"]], data["length_key"])
  ax.set_ylabel(f"test {data['metric']}")
  return _finish(fig, [ax], path, title)


def metric_vs_test_set(data: dict, names: list, path: str,
                       title: str = "") -> plt.Figure:
  """The test metric on the in-distribution test set and on each extra test set
  (`names`, in order along x), a line per model and setting (mean, and the
  min-max band over seeds), and the chance level dashed."""
  fig, ax = plt.subplots(figsize=(7, 4))
  x = onp.arange(len(names) + 1)
  index = itertools.count()
  for label, pts in _by_model(data["points"]).items():
    for p in pts:
      sets = [dict(mean=p["test_mean"], min=p["test_min"], max=p["test_max"])]
      sets += [p["extra_tests"].get(n, dict(mean=onp.nan, min=onp.nan,
                                            max=onp.nan)) for n in names]
      name = label if p["length"] is None or len(pts) == 1 else f"{label}, {p['length']}"
      _line_with_band(ax, x, [s["mean"] for s in sets], [s["min"] for s in sets],
                      [s["max"] for s in sets], name, next(index))
  ax.axhline(data["chance"], color="gray", linestyle="--", label="chance")
  ax.set_xticks(x, ["test"] + list(names), rotation=30, fontsize=8)
  ax.set_ylabel(f"test {data['metric']}")
  return _finish(fig, [ax], path, title)


def cost_vs_length(data: dict, path: str, title: str = "") -> plt.Figure:
  """Step time and the compiled step's temporary memory (activations and
  workspace, from XLA's memory analysis) against dependency length, a line per
  model."""
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  for ax, key, label in zip(axes, ("step_ms", "step_temp_mb"),
                            ("step time (ms)", "step temporaries (MB)")):
    for i, (model, pts) in enumerate(_by_model(data["points"]).items()):
      ax.plot([p["length"] for p in pts], [p[key] for p in pts], label=model,
              **series_style(i))
    _log_scale_if_positive(ax, "y", [p[key] for p in data["points"]])
    _length_axis(ax, [p["length"] for p in data["points"]], data["length_key"])
    ax.set_ylabel(label if any(_finite(p[key]) for p in data["points"])
                  else f"{label}: not measured")
  return _finish(fig, list(axes), path, title)


def _finite(value) -> bool:
  return value is not None and bool(onp.isfinite(value))


def _log_scale_if_positive(ax, axis: str, values) -> None:
  """A log scale where every measured value is positive (a log axis of no
  positive value cannot be drawn); linear otherwise."""
  measured = [v for v in values if _finite(v)]
  if measured and min(measured) > 0:
    getattr(ax, f"set_{axis}scale")("log")


def horizon_vs_compute(rows: list, path: str) -> None:
  """The memory horizon against training FLOPs (log-log), a panel per task and
  a point per model (seqjax.horizon's rows): the bracket drawn up to the
  shortest length failed; a search that never failed as ^ at its longest
  length, one that failed at the start as v at the start; the window model's
  k dashed."""
  tasks = list(dict.fromkeys(r["task"] for r in rows))
  fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4),
                           squeeze=False)
  for ax, task in zip(axes[0], tasks):
    drawn = [r for r in rows if r["task"] == task and r["probes"]]
    for r in drawn:
      y = r["horizon"] if r["horizon"] is not None else r["start"]
      marker = {"at least": "^", "below the start": "v"}.get(r["status"], "o")
      up = (r["failed"]["length"] - y) if r["failed"] and r["horizon"] else 0
      ax.errorbar([r["flops"]], [y], yerr=[[0], [up]], marker=marker,
                  capsize=3, label=r["model"])
    for k in sorted({r["window"] for r in rows
                     if r["task"] == task and r["window"]}):
      ax.axhline(k, color="gray", linestyle="--", linewidth=0.8)
      ax.annotate(f"window k = {k}", (0.01, k), xycoords=("axes fraction", "data"),
                  fontsize=7, va="bottom")
    ax.set_xscale("log")
    ax.set_yscale("log", base=2)
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("training FLOPs (estimate, all probes)")
    ax.set_ylabel("horizon (longest length solved)")
    ax.set_title(task)
    if drawn:
      ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
