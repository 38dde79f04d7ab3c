"""The README's figures, drawn from the results JSON files (run through `tables.py --plots DIR`).

matplotlib is an optional extra (`pip install matplotlib`), needed only here: training and the
tests never import it. Each figure is a plain PNG of measured numbers, never typed ones.
"""
import os
import statistics


def pyplot():
    """matplotlib's pyplot on a file-only backend, or ImportError with the install line."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plots need matplotlib, an optional extra: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def temperature_sweep(records, path, label=lambda r: f"distilled {r['architecture']}"):
    """Test errors against T, one line per `label(record)` (a student width, by default): mean
    over seeds, bars = min-max."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    widest_first = sorted(records, key=lambda r: (-len(r["architecture"]), label(r)))
    for name in dict.fromkeys(label(r) for r in widest_first):
        by_T = {}
        for r in records:
            if label(r) == name:
                by_T.setdefault(r["T"], []).append(r["test_errors"])
        Ts = sorted(by_T)
        means = [statistics.mean(by_T[T]) for T in Ts]
        low = [m - min(by_T[T]) for m, T in zip(means, Ts)]
        high = [max(by_T[T]) - m for m, T in zip(means, Ts)]
        seeds = max(len(v) for v in by_T.values())
        ax.errorbar(Ts, means, yerr=[low, high], marker="o", capsize=3,
                    label=f"{name} ({seeds} seed{'s' if seeds > 1 else ''})")
    ax.set_xscale("log")
    ax.set_xticks(sorted({r["T"] for r in records}))
    ax.set_xticklabels([f"{T:g}" for T in sorted({r["T"] for r in records})])
    return finish(fig, ax, "temperature T", "Temperature sweeps: mean, min-max over seeds", path)


def learning_curves(runs, path):
    """Test errors per epoch of each (label, record), log scale."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, r in runs:
        epochs = [h["epoch"] for h in r["history"]]
        ax.plot(epochs, [h["test_errors"] for h in r["history"]], label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.ticker import ScalarFormatter
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(ScalarFormatter())
    return finish(fig, ax, "epoch", "Learning curves (seed 1)", path)


def finish(fig, ax, xlabel, title, path):
    """Label a figure of test errors and write it to `path` (a PNG, renamed into place)."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test errors (of 10,000)")
    ax.set_title(title)
    ax.legend()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}.png"
    fig.tight_layout()
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)
    return path
