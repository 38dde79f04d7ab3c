"""tables.py's output across several files, and the README's first-screen blocks.

- refresh_files / check_files: each generated block goes to the one given file that holds its
  <!-- NAME:begin --> ... <!-- NAME:end --> markers (README.md or a docs/ page); none or two:
  exit 2, nothing written.
- headline_table: the paper's rows (teacher, small net, distilled student, the no-3 and the
  7s-and-8s students as trained and after the paper's shift), the paper's number beside ours,
  seed-paired rows beside the legacy ones whose students all learned from one teacher.
- demo_block: the quick demo's run against the full-length run of the same command.

study_tables.main (tables.py's command line) calls these; this file imports both of them.
"""
import os
import statistics
import sys

import study_tables
import tables
from tables import fail, grouped, marks, paper_setting, row_key, row_order


# --- several files
def refresh_files(paths, blocks, write=True):
    """tables.refresh over several files: {file: its stale blocks}, written unless write=False.
    Every block is placed before anything is written, so bad input leaves all files alone."""
    paths = list(dict.fromkeys(os.path.normpath(p) for p in paths))  # a file named twice: once
    texts = {}
    for path in paths:
        try:
            with open(path) as f:
                texts[path] = f.read()
        except OSError as e:
            fail(f"cannot read {path!r} ({type(e).__name__})")
    where = {}
    for name, text in blocks.items():
        holders = [p for p in paths if f"<!-- {name}:begin -->" in texts[p]]
        if len(holders) != 1:
            fail(f"{' and '.join(holders)} both hold a <!-- {name}:begin --> block: keep one"
                 if holders else f"no <!-- {name}:begin --> ... <!-- {name}:end --> block to "
                 f"replace in {', '.join(paths)}")
        where.setdefault(holders[0], {})[name] = text
    stale = {path: tables.refresh(path, part, write=False) for path, part in where.items()}
    for path, part in where.items():
        if write and stale[path]:
            tables.refresh(path, part)
    return {path: names for path, names in stale.items() if names}


def check_files(paths, blocks):
    """--check: one line per file whose blocks are stale and exit 1, else one line and 0."""
    stale = refresh_files(paths, blocks, write=False)
    for path, names in stale.items():
        print(f"{path}: the generated sections {', '.join(names)} differ from the results "
              "files (rerun with --write)", file=sys.stderr)
    if stale:
        raise SystemExit(1)
    print(f"{', '.join(paths)}: all {len(blocks)} generated sections match the results files")


# --- the headline table
def mean_std(values, digits, unit=""):
    """'94.3 ± 9.0' over seeds, or the one seed's value."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}{unit}" if isinstance(values[0], float) else f"{values[0]}{unit}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}{unit}"


def cell(shown, runs, verdict, mark, extra=""):
    """'94.3 ± 9.0, 3 seeds †: MISSED' or '105, 1 seed: no verdict yet'."""
    verdict = "no verdict yet" if verdict.startswith("no verdict") else verdict
    n = len(runs)
    return f"{shown}, {n} seed{'s' * (n > 1)}{extra}{mark}{f': {verdict}' if verdict else ''}"


def paired(runs):
    """Students that each learned from the teacher of their own seed (and nets of no teacher)."""
    return all("teacher_run" in r or r["model"] != "student" for r in runs)


def headline_table(plain, dark):
    """One line per paper row: the paper's number, our seed-paired row, our legacy row."""
    lines = ["| net | paper | ours, seed-paired: each seed's student learns from that seed's "
             "teacher | ours, legacy: every student learned from one teacher |",
             "|---|---|---|---|"]
    rows = grouped([r for r in plain if paper_setting(row_key(r))], row_key)
    rows = {k: runs for k, runs in rows.items() if k.batch is None}  # the recipe's own minibatch
    teacher_epochs = {r["teacher_run"].get("epochs") for runs in rows.values() if paired(runs)
                      for r in runs if r["model"] == "student"}
    for model in ("teacher", "small", "student"):
        keys = sorted((k for k in rows if k.model == model), key=row_order)
        now = [k for k in keys if paired(rows[k]) and (model != "teacher" or k.epochs in teacher_epochs)]
        # the teacher: seed-paired where its epochs are those of the paired students' teachers
        before = [k for k in keys if k not in now and model != "small"]
        if not keys:
            continue
        epochs = bool(now and before and now[0].epochs != before[0].epochs)
        cells = []
        for side in (now, before):
            if not side:
                cells.append("" if model != "small" else "the same runs (it learns from no teacher)")
                continue
            key, runs = side[0], rows[side[0]]
            verdict = tables.target_verdict(key, runs, plain).rsplit(": ", 1)[-1]
            cells.append(cell(mean_std([r["test_errors"] for r in runs], 1), runs, verdict,
                              marks(tables.describe_row(key), runs),
                              f", {key.epochs} epochs" if epochs else ""))
        paper = tables.PAPER[(model, keys[0].architecture, keys[0].T)]
        lines.append(f"| {tables.describe_row(keys[0])} | {paper} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines + dark_lines(dark))


def dark_lines(dark):
    """The no-3 and 7s-and-8s students of the recipe's own minibatch, as trained and after the
    paper's fixed shift."""
    groups = grouped([r for r in dark if r["model"] == "student"], study_tables.dark_key)
    lines = []
    for experiment, what in (("wo3", "no-3 student (no 3s in its transfer set"),
                             ("only78", "7s-and-8s student (only 7s and 8s in its transfer set")):
        keys = sorted((k for k in groups if k.experiment == experiment and k.batch is None), key=str)
        now = [k for k in keys if paired(groups[k])]
        before = [k for k in keys if not paired(groups[k])]
        for variant in study_tables.VARIANTS[:2]:
            paper = study_tables.PAPER_DARK[(experiment, variant)]
            cells, label = [], ""
            for side in (now, before):
                if not side:
                    cells.append("")
                    continue
                key, runs = side[0], groups[side[0]]
                reports = [r["variants"][variant] for r in runs]
                percent = experiment.startswith("only")
                shown = [100 * v["test_errors"] / v["test_count"] if percent else v["test_errors"]
                         for v in reports]
                missing = [v["missing_class_errors"] for v in reports]
                label = (f"{what}, distilled {key.architecture}, T={key.T:g}), as trained"
                         if variant == "as trained" else f"{what.split(' (')[0]}, after the "
                         f"paper's bias shift {reports[0]['bias_shift']:+.1f}")
                cells.append(cell(mean_std(shown, 2 if percent else 1, "%" if percent else ""), runs,
                                  study_tables.dark_verdict(paper, shown, missing),
                                  marks(label, runs)))
            if label:
                lines.append(f"| {label} | {paper.errors} | {cells[0]} | {cells[1]} |")
    return lines


# --- the quick demo
def demo_block(demo, plain, models):
    """Each demo run: its test errors, its teacher's and the shipped small net's of its
    architecture, the full-length run of the same command and seed, and its wall-clock."""
    lines = []
    for r in sorted(demo, key=lambda r: r["_path"]):
        full = [p for p in plain if paper_setting(row_key(p)) and p["model"] == r["model"]
                and p["seed"] == r["seed"] and p.get("teacher") == r.get("teacher")
                and p["architecture"] == r["architecture"] and p.get("T") == r.get("T")
                and tables.batch_size(p) == tables.batch_size(r)
                and tables.learning_rate(p) == tables.learning_rate(r)
                and p["epochs"] == tp_epochs(p)]
        small = [m for m in models if m["model"] == "small" and m["architecture"] == r["architecture"]
                 and m.get("dataset", "mnist") == r.get("dataset", "mnist")]
        lines.append(
            f"`{r['_path']}`: {r['test_errors']} test errors after {r['epochs']} epochs "
            f"(teacher {r['teacher_test_errors']}"
            + "".join(f", small net {m['test_errors']} in `{m['_path']}`" for m in small) + ")"
            + "".join(f"; the same command and seed at the recipe's {p['epochs']} epochs made "
                      f"{p['test_errors']}, {r['test_errors'] - p['test_errors']} fewer "
                      f"(`{p['_path']}`)" for p in full)
            + f". Wall-clock {r['wall_s'] / 60:.1f} min, {r.get('threads', 1)} threads, on "
            f"{r.get('hardware', r['device'])}.")
    return "\n\n".join(lines)


def tp_epochs(r):
    """The epochs its recipe gives a run of its role."""
    field = {"teacher": "teacher_epochs", "small": "epochs", "student": "distill_epochs"}[r["model"]]
    return r["params"].get(field, getattr(tables.tp.PARAMS_BY_NAME.get(r["params"].get("name")),
                                          field, None))
