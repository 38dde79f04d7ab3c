"""Regenerate the README's results table from the JSON files the scripts wrote.

    python tables.py results/local_demo                # print the table (markdown)
    python tables.py results/local_demo --write README.md   # replace it in the README

Runs that differ only in their seed form one row: mean ± sample std and min-max over seeds,
so nothing is typed or rounded by hand.
"""
import argparse
import glob
import json
import os
import statistics
import sys

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
# (model, architecture, T) -> the paper's test errors (../shared/PAPER.md)
PAPER = {("teacher", "784-1200-1200-10", None): 67, ("small", "784-800-800-10", None): 146,
         ("student", "784-800-800-10", 20.0): 74}
ORDER = {"teacher": 0, "small": 1, "student": 2}


def load_records(paths):
    files = []
    for path in paths:
        files += sorted(glob.glob(os.path.join(path, "*.json"))) if os.path.isdir(path) else [path]
    records = []
    for name in files:
        with open(name) as f:
            record = json.load(f)
        if isinstance(record, dict) and "test_errors" in record and "seed" in record:
            records.append(record)
    return records


def row_key(r):
    """Everything that defines an experiment except the seed."""
    return (r["model"], r["architecture"], r.get("T"), r.get("alpha"), r["params"]["name"],
            r["epochs"], r.get("jitter", 0), tuple(r.get("omit", [])), tuple(r.get("only", [])),
            r.get("subset", 1.0))


def describe_row(key):
    model, arch, T, alpha, params, epochs, jitter, omit, only, subset = key
    name = {"teacher": "teacher", "small": "small net, hard labels", "student": "distilled"}[model]
    parts = [f"{name} {arch}"]
    if T is not None:
        parts.append(f"T={T:g}, alpha={alpha:g}")
    if jitter:
        parts.append(f"jitter {jitter}px")
    if omit or only:
        parts.append(f"omit {list(omit)}" if omit else f"only {list(only)}")
    if subset < 1:
        parts.append(f"{subset:g} of the images")
    return ", ".join(parts)


def table(records):
    groups = {}
    for r in records:
        groups.setdefault(row_key(r), []).append(r)
    lines = ["| experiment | paper | ours: mean ± std | min-max | seeds | recipe, epochs | "
             "wall-clock per run | hardware |", "|---|---|---|---|---|---|---|---|"]
    for key in sorted(groups, key=lambda k: (ORDER[k[0]], k[1], k[2] or 0, str(k))):
        runs = sorted(groups[key], key=lambda r: r["seed"])
        errors = [r["test_errors"] for r in runs]
        spread = f" ± {statistics.stdev(errors):.1f}" if len(errors) > 1 else " (one seed)"
        paper = PAPER.get((key[0], key[1], key[2]), "")
        wall = statistics.mean(r["wall_s"] for r in runs) / 60
        hardware = sorted({r.get("hardware", r["device"]) for r in runs})
        lines.append(f"| {describe_row(key)} | {paper} | {statistics.mean(errors):.1f}{spread} | "
                     f"{min(errors)}-{max(errors)} | {len(runs)} ({', '.join(str(r['seed']) for r in runs)}) | "
                     f"{key[4]}, {key[5]} | {wall:.1f} min | {'; '.join(hardware)} |")
    return "\n".join(lines)


def write_between_markers(path, text):
    with open(path) as f:
        content = f.read()
    if BEGIN not in content or END not in content:
        sys.exit(f"tables.py: error: {path} has no {BEGIN} ... {END} block")
    head, rest = content.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    with open(path, "w") as f:
        f.write(f"{head}{BEGIN}\n{text}\n{END}{tail}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="results JSON files or folders of them")
    parser.add_argument("--write", metavar="README", help="replace the table in this file")
    args = parser.parse_args(argv)
    text = table(load_records(args.paths))
    if args.write:
        write_between_markers(args.write, text)
    print(text)


if __name__ == "__main__":
    main()
