"""
Draw the scale benchmark's results: each cost against the number of zones,
before and after the work on a fixed cost per zone.

Reads ``bench/results/scale-before.json`` (``bench/scale.py`` as it was
before, kept as measured) and ``bench/results/scale.json`` (the latest run),
and writes ``bench/scale.png``, which the README shows.  Figures a results
file does not have (the process counts, new with the later run) are left
out of its line.

Run: ``.venv/bin/python bench/plot_scale.py`` (needs matplotlib:
``make bench`` installs it).
"""

import argparse
import json
import os
import sys

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(BENCH_DIR, "results")
PANELS = (
    ("noop_apply_s", "no-op highstate (s)"),
    ("noop_procs_per_node", "global-zone processes per zone node\n(no-op highstate)"),
    ("status_s", "salt-run ucarp.status (s)"),
    ("settled_s", "settled, from the first highstate's start (s)"),
)


def load(path):
    with open(path, encoding="utf-8") as fh:
        record = json.load(fh)
    return record, sorted(record["samples"], key=lambda s: s["zones"])


def label(name, record):
    return f"{name} ({record['date'][:16].replace('T', ' ')} UTC)"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--before", default=os.path.join(RESULTS, "scale-before.json"))
    parser.add_argument("--after", default=os.path.join(RESULTS, "scale.json"))
    parser.add_argument("--output", default=os.path.join(BENCH_DIR, "scale.png"))
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [("before", *load(args.before), "o--"), ("after", *load(args.after), "s-")]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5))
    for ax, (key, title) in zip(axes.flat, PANELS, strict=True):
        for name, record, samples, style in runs:
            points = [(s["zones"], s[key]) for s in samples if key in s]
            if points:
                ax.plot(*zip(*points, strict=True), style, label=label(name, record))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("zones (two per cluster, on two hypervisors)", fontsize=8)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        missing = [name for name, _record, samples, _style in runs if not any(key in s for s in samples)]
        if missing:
            ax.text(0.5, 0.5, f"not counted in the {' and '.join(missing)} run", transform=ax.transAxes,
                    ha="center", fontsize=8, color="grey")  # fmt: skip
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle("bench/scale.py: cost against the number of zones", fontsize=12)
    fig.tight_layout()
    fig.savefig(args.output, dpi=100)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
