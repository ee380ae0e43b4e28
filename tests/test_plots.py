"""The report's plots read well: coinciding series stay apart, the x axis is
ticked at the lengths tried, the legend is off the data (Figure objects, no
pixels)."""

from matplotlib.backends.backend_agg import FigureCanvasAgg
import numpy as onp

from seqjax import plots

LENGTHS = [4, 16, 48]


def report_data():
  """A report's data of three models over three lengths, the transformer and
  the lru both at 1.0 everywhere (their lines coincide)."""
  means = {"gru": [0.64, 0.6, 0.41], "lru": [1.0, 1.0, 1.0],
           "transformer": [1.0, 1.0, 1.0]}
  points = [dict(model=m, label=m, length=l, test_mean=v, test_min=v - 0.01,
                 test_max=min(v + 0.01, 1.0), step_ms=1.0 + i, step_temp_mb=2.0,
                 extra_tests={})
            for m, vs in means.items() for i, (l, v) in enumerate(zip(LENGTHS, vs))]
  return dict(points=points, chance=0.125, metric="accuracy",
              length_key="arg.length", baselines={})


def lines_by_label(ax):
  return {line.get_label(): line for line in ax.get_lines()}


def test_length_plots_tick_the_lengths_tried_and_keep_coinciding_lines_apart(
    tmp_path):
  data = report_data()
  metric = plots.metric_vs_length(data, str(tmp_path / "a.png"), title="copy")
  cost = plots.cost_vs_length(data, str(tmp_path / "c.png"), title="copy")
  assert (tmp_path / "a.png").exists() and (tmp_path / "c.png").exists()
  for fig in (metric, cost):
    renderer = FigureCanvasAgg(fig).get_renderer()
    axes = fig.axes
    for ax in axes:
      assert [t.get_text() for t in ax.get_xticklabels()] == ["4", "16", "48"]
      onp.testing.assert_array_equal(ax.get_xticks(), LENGTHS)
      assert not ax.xaxis.get_minorticklocs().size  # no 2x10^1 between them
      lines = lines_by_label(ax)
      lru, transformer = lines["lru"], lines["transformer"]
      assert lru.get_marker() != transformer.get_marker()
      assert lru.get_linestyle() != transformer.get_linestyle()
      assert lru.get_markerfacecolor() == "none"  # hollow: nested, not hidden
      assert lru.get_markersize() != transformer.get_markersize()
    legend = axes[-1].get_legend()
    assert legend is not None
    # The legend lies to the right of every axes: off the data.
    assert legend.get_window_extent(renderer).x0 >= max(
        ax.get_window_extent(renderer).x1 for ax in axes)
    assert plots.SERIES_NOTE in [t.get_text() for t in fig.texts]
  coinciding = lines_by_label(metric.axes[0])
  onp.testing.assert_array_equal(coinciding["lru"].get_ydata(),
                                 coinciding["transformer"].get_ydata())


def test_every_series_of_a_plot_has_its_own_marker_and_line_style():
  styles = [plots.series_style(i) for i in range(8)]
  assert len({(s["marker"], s["linestyle"]) for s in styles}) == 8
  assert len({s["marker"] for s in styles}) == 8
  sizes = [s["markersize"] for s in styles]
  assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 8


def test_width_plot_ticks_the_widths_tried_and_keeps_coinciding_lines_apart(
    tmp_path):
  accuracy = {(m, l, w): v for l in (64, 256) for w in (16, 32, 128)
              for m, v in (("based", 1.0), ("transformer", 1.0),
                           ("mamba", w / 128))}
  fig = plots.metric_vs_width(accuracy, str(tmp_path / "w.png"))
  for ax in fig.axes:
    assert [t.get_text() for t in ax.get_xticklabels()] == ["16", "32", "128"]
    lines = lines_by_label(ax)
    assert (lines["based"].get_marker(), lines["based"].get_linestyle()) != (
        lines["transformer"].get_marker(), lines["transformer"].get_linestyle())
  assert fig.axes[-1].get_legend() is not None
