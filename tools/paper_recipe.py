"""The paper's own recipe (`--params paper`) in training: each net's test errors per epoch and
what its full 3000 epochs would cost here, from the results JSON files of short runs.

    python tools/paper_recipe.py results/paper_recipe                 # print the tables
    python tools/paper_recipe.py results/paper_recipe --write docs/PAPER_RECIPE.md
    python tools/paper_recipe.py results/paper_recipe --check docs/PAPER_RECIPE.md   # exit 1 if stale

The cost is the run's own training time per epoch times the recipe's epochs: the lr decay and
momentum ramp change nothing per epoch, so a short run measures the long one's pace.
"""
import argparse
import glob
import json
import os
import sys

sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the scripts, one folder up
import tables  # noqa: E402  (the README block writer; tools/ is this file's folder)
import training_params as tp  # noqa: E402

ROLES = ("teacher", "small", "student")  # the columns, in the order the paper trains them
BLOCK = "paper-recipe"


def load_runs(folder):
    """{role: record} of the PaperParams runs in `folder` (one per role)."""
    runs = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        with open(path) as f:
            record = json.load(f)
        if record.get("params", {}).get("name") != "PaperParams":
            continue
        if record["model"] in runs:
            tables.fail(f"{folder}: two {record['model']} runs ({os.path.basename(path)})")
        runs[record["model"]] = {**record, "file": os.path.basename(path)}
    if not runs:
        tables.fail(f"{folder}: no results of --params paper runs")
    return runs


def epoch_table(runs):
    """Test errors after each epoch, one column per net."""
    roles = [role for role in ROLES if role in runs]
    longest = max(len(runs[role]["history"]) for role in roles)
    lines = ["| epoch | " + " | ".join(f"{role} {runs[role]['architecture']}" for role in roles) + " |",
             "|---:|" + "---:|" * len(roles)]
    for i in range(longest):
        cells = [str(runs[r]["history"][i]["test_errors"]) if i < len(runs[r]["history"]) else ""
                 for r in roles]
        lines.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    return lines


def full_epochs(record):
    """The recipe's own length for the run's net (the record holds the short run's)."""
    paper = tp.PaperParams()
    return {"teacher": paper.teacher_epochs, "small": paper.epochs,
            "student": paper.distill_epochs}[record["model"]]


def cost_table(runs):
    """Seconds per epoch as measured, and the recipe's full length at that pace."""
    lines = ["| net | epochs run | test errors | s per epoch | full recipe | at that pace | "
             "machine, threads | results file |", "|---|---:|---:|---:|---:|---:|---|---|"]
    for role in (r for r in ROLES if r in runs):
        run = runs[role]
        per_epoch = run["train_s"] / run["epochs"]
        hours = per_epoch * full_epochs(run) / 3600
        lines.append(f"| {role} {run['architecture']} | {run['epochs']} | {run['test_errors']} | "
                     f"{per_epoch:.1f} | {full_epochs(run)} epochs | {hours:.1f} h | "
                     f"{run['hardware']}, {run['threads']} | `{run['file']}` |")
    return lines


def block(runs):
    return "\n".join(epoch_table(runs) + [""] + cost_table(runs))


def main(argv=None):
    parser = tables.OneLineErrors(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="results folder of the --params paper runs")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--write", metavar="FILE", help=f"put the tables in FILE's {BLOCK} block")
    where.add_argument("--check", metavar="FILE", help="exit 1 if FILE's block is stale")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.folder):
        tables.fail(f"{args.folder!r} is not a folder")
    text = block(load_runs(args.folder))
    if args.write:
        tables.refresh(args.write, {BLOCK: text})
    elif args.check:
        if tables.refresh(args.check, {BLOCK: text}, write=False):
            print(f"{args.check}'s {BLOCK} block is stale: run python tools/paper_recipe.py "
                  f"{args.folder} --write {args.check}", file=sys.stderr)
            sys.exit(1)
    else:
        print(text)


if __name__ == "__main__":
    main()
