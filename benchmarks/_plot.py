"""Plots for the benchmarks' ``--plot FILE`` (matplotlib, from the ``bench`` extra): one colour
per framework in every plot, so the docs' figures read alike."""

from __future__ import annotations

COLOURS = {"aiov": "#1f77b4", "onnxruntime": "#7f7f7f", "openvino": "#d62728"}
_OTHERS = ["#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install 'aiov[bench]'") from None
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def colour(name: str, index: int) -> str:
    """A framework's colour (by the first word of a label such as "aiov batch")."""
    return COLOURS.get(name.split()[0], _OTHERS[index % len(_OTHERS)])


def grouped_bars(path, title, groups, series, ylabel, note=None, log=False):
    """Bars per group (a model), one per series (a framework): ``series`` maps a name to one
    value per group (None: not measured)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(groups) + 2), 3.8), dpi=100)
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        heights = [v if v is not None else 0.0 for v in values]
        ax.bar(xs, heights, width, label=name, color=colour(name, i))
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=20, ha="right", fontsize=8)
    if log:
        ax.set_yscale("log")
    _finish(plt, fig, ax, title, ylabel, note, path)


def lines(path, title, panels, xlabel, ylabel, note=None):
    """One panel per entry of ``panels`` ({panel title: (xs, {series name: ys})}), log-x."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.8), dpi=100, squeeze=False)
    for ax, (panel, (xs, series)) in zip(axes[0], panels.items()):
        for i, (name, ys) in enumerate(series.items()):
            dashed = "batch" in name
            ax.plot(xs, ys, marker="o", label=name, color=colour(name, i), linestyle="--" if dashed else "-")
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs)
        ax.set_xticklabels([str(x) for x in xs])
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    if note:
        fig.text(0.01, 0.01, note, fontsize=7, color="#555555")
    fig.tight_layout(rect=(0, 0.04 if note else 0, 1, 1))
    fig.savefig(path)
    plt.close(fig)


def _finish(plt, fig, ax, title, ylabel, note, path):
    ax.set_title(title, fontsize=11)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    if note:
        fig.text(0.01, 0.01, note, fontsize=7, color="#555555")
    fig.tight_layout(rect=(0, 0.04 if note else 0, 1, 1))
    fig.savefig(path)
    plt.close(fig)
