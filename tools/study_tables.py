"""tables.py's other tables (dark knowledge, temperature sweep, recipe studies, CNN / hints,
checkpoints) and its command line. This file imports tables.py (the shared helpers, the main
table, the README's blocks); tables.py imports it only inside its main(), when the command
runs, so there is no import cycle."""
import argparse
import glob
import os
import statistics
from collections import namedtuple

import tables
from tables import (ORDER, UNPAIRED, batch_note, batch_size, changed, fail, grouped, learning_rate,
                    load_records, logit_method, marks, method, seeds, spread, teacher_key,
                    teacher_note, tp, verdict)

# --- the dark-knowledge table: distillation_no_three.py's runs
# (experiment, variant) -> the paper's numbers, also issue 6's targets for our means
PaperDark = namedtuple("PaperDark", "errors missing")
PAPER_DARK = {("wo3", "as trained"): PaperDark("206", "133"),
              ("wo3", "fixed shift"): PaperDark("109", "14"),
              ("only78", "as trained"): PaperDark("47.3%", None),
              ("only78", "fixed shift"): PaperDark("13.2%", None)}
NO_PAPER = PaperDark("", None)
VARIANTS = ("as trained", "fixed shift", "frequency-matched shift")

class DarkKey(namedtuple("DarkKey", "experiment model architecture T teacher recipe epochs lr "
                         "batch")):
    """A dark-knowledge row but for its variant and seed. experiment: wo3 or only78; teacher:
    teacher_key; batch: a minibatch other than the recipe's. Ties sort in the fields' order."""

def dark_key(r):
    return DarkKey(r["experiment"], r["model"], r["architecture"], r.get("T"), teacher_key(r),
                   r["params"]["name"], r["epochs"], learning_rate(r), batch_size(r))

def dark_verdict(paper, shown, missing):
    """'met' / 'MISSED': our means at most the paper's numbers."""
    if not paper.errors:
        return ""
    ok = statistics.mean(shown) <= float(paper.errors.rstrip("%")) and (
        not paper.missing or statistics.mean(missing) <= float(paper.missing))
    return verdict("", ok, shown)[2:]

def dark_knowledge_table(records, strict=False):
    """One row per (experiment, net, variant) of distillation_no_three.py runs, over seeds."""
    groups = grouped(records, dark_key)
    lines = ["| transfer set | net | variant | bias shift | test errors | paper | errors on "
             "missing classes | paper | seeds | recipe, epochs, lr | target: at most the paper's |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(groups, key=lambda k: (k.experiment.startswith("only"), k.model == "small",
                                             k.batch is not None, str(tuple(k)))):
        runs = groups[key]
        net = ", ".join(filter(None, [f"distilled {key.architecture}, T={key.T:g}"
                                      if key.model == "student" else
                                      f"small {key.architecture}, hard labels", teacher_note(runs[0])]))
        net += marks(f"{key.experiment}, {net}", runs, strict)
        lines += [dark_row(key, net, variant, runs) for variant in VARIANTS]
    return "\n".join(lines)

def dark_row(key, net, variant, runs):
    reports = [r["variants"][variant] for r in runs]
    errors = [v["test_errors"] for v in reports]
    missing = [v["missing_class_errors"] for v in reports]
    percent = key.experiment.startswith("only")  # only78's test set is of two classes: a share
    shown = [100 * e / v["test_count"] for e, v in zip(errors, reports)] if percent else errors
    paper = PAPER_DARK.get((key.experiment, variant), NO_PAPER) if key.model == "student" else NO_PAPER
    return (f"| {key.experiment} | {net} | {variant} | {spread([v['bias_shift'] for v in reports], 2)} | "
            f"{spread(shown, 2 if percent else 1)}{'%' if percent else ''} | {paper.errors} | "
            f"{spread(missing)} of {reports[0]['missing_class_count']} | {paper.missing or ''} | "
            f"{len(runs)} ({seeds(runs)}) | {key.recipe}, {key.epochs}"
            f"{f', lr {key.lr:g}' if key.lr else ''}{batch_note(key.batch)} | "
            f"{dark_verdict(paper, shown, missing)} |")

# --- the temperature sweep
def is_sweep(r, swept):
    """A student of a temperature sweep: plain transfer set, architecture distilled at 3+ T."""
    return (r["model"] == "student" and r["architecture"] in swept and not r.get("omit")
            and not r.get("only") and r.get("subset", 1.0) == 1.0)

def swept_architectures(records):
    temperatures = {}
    for r in records:
        if r["model"] == "student" and not r.get("omit") and not r.get("only"):
            temperatures.setdefault(r["architecture"], set()).add(r["T"])
    return {arch for arch, Ts in temperatures.items() if len(Ts) >= 3}

def sweep_label(r):
    """A sweep's column and its line in the figure: a width, a minibatch, a teacher recipe."""
    note, by = teacher_note(r), logit_method(r)
    return (f"distilled {r['architecture']}{f' by {by}' if by else ''}{batch_note(batch_size(r))}"
            f"{f', {note}' if note else ''}")

# a column of the sweep table: batch is 0 for the recipe's, teacher the teacher_key as text
SweepColumn = namedtuple("SweepColumn", "architecture batch teacher logit_loss")

def sweep_column(r):
    return SweepColumn(r["architecture"], batch_size(r) or 0, str(teacher_key(r)), logit_method(r))

def sweep_table(records, strict=False):
    """Test errors by temperature (rows) and student width, minibatch and teacher recipe
    (columns), over seeds; a column of students from one teacher is marked in its head."""
    columns = sorted({sweep_column(r) for r in records}, key=lambda c: (-len(c.architecture), c))
    label = {sweep_column(r): sweep_label(r) for r in records}
    unpaired = {sweep_column(r) for r in records if "teacher_run" not in r}
    cells = grouped(records, lambda r: (r["T"], sweep_column(r)))
    lines = ["| T | " + " | ".join(label[c] + f" {UNPAIRED}" * (c in unpaired) for c in columns)
             + " |", "|---|" + "---|" * len(columns)]
    for T in sorted({r["T"] for r in records}):
        row = []
        for c in columns:
            runs = cells.get((T, c), [])
            mark = marks(f"T={T:g}, {label[c]}", runs, strict).replace(UNPAIRED, "").rstrip()
            row.append(f"{spread([r['test_errors'] for r in runs])}, seeds "
                       f"{','.join(str(r['seed']) for r in runs)}{mark}" if runs else "")
        lines.append(f"| {T:g} | " + " | ".join(row) + " |")
    return "\n".join(lines + ["", sweep_recipes(records, columns, label)])

def sweep_recipes(records, columns, label):
    """The line under the sweep table: each column's recipe, the wall-clock and the machines."""
    recipes = {}
    for r in records:
        column = columns.index(sweep_column(r))
        recipes[(column, r["params"]["name"], r["epochs"], str(learning_rate(r)), r["alpha"])] = (
            f"{label[sweep_column(r)][len('distilled '):]}: {r['params']['name']}, {r['epochs']} "
            f"epochs, {f'lr {learning_rate(r):g}, ' if learning_rate(r) else ''}alpha {r['alpha']:g}")
    walls = [r["wall_s"] / 60 for r in records]
    return (f"Recipe: {'; '.join(recipes[k] for k in sorted(recipes))}; wall-clock per run "
            f"{min(walls):.1f}-{max(walls):.1f} min on "
            f"{'; '.join(sorted({r.get('hardware', r['device']) for r in records}))}.")

# --- the recipe studies: runs with held-out images, ranked by their validation errors
STUDY_FIELDS = ["T", "alpha", "distill_lr", "distill_epochs", "optimizer", "nesterov", "ema",
                "distill_batch_size", "lr_schedule", "lr_decay", "standardize", "init_std",
                "distill_warmup_steps", "teacher_dropout"]
# the recipe the study started from: LocalParams as it was then, student lr 0.05, batch 100, T 20
STUDY_BASE = {**tp.as_dict(tp.LocalParams()), "T": 20.0, "distill_lr": 0.05,
              "distill_batch_size": 100}
SHIPPED_TEACHER = "cumbersome_model_1200.pt"

def teacher_group(r):
    """(0, '') for a student of the shipped teacher or a teacher run, else (1, its teacher)."""
    name = os.path.basename(r.get("teacher") or SHIPPED_TEACHER)
    return (0, "") if r["model"] != "student" or name == SHIPPED_TEACHER else (1, name)

def study_arm(r, fields=STUDY_FIELDS, base=STUDY_BASE):
    """What sets a study run apart from the recipe the study started from, in words (a
    student's teacher too, when it is not the shipped one)."""
    params = r["params"]
    if r["model"] == "student":  # fields older students kept elsewhere
        params = {**params, **{k: tp.recorded(params, k) for k in tp.FORMERLY}}
    words = changed(params, fields, base)
    if r["model"] == "student" and r.get("jitter"):
        words.append(f"jitter {r['jitter']}")
    if r["model"] == "student" and logit_method(r):
        words.append(f"by {logit_method(r)}")
    other, teacher = teacher_group(r)
    if other:
        words.append(f"teacher {teacher}")
    if r["architecture"] != {"teacher": "784-1200-1200-10"}.get(r["model"], "784-800-800-10"):
        words.insert(0, r["architecture"])
    return ", ".join(words) or "none: the starting recipe"

def teacher_arm(r):
    """A teacher-study arm: what differs from the recipe the teacher study started from."""
    return study_arm(r, tables.TEACHER_STUDY_FIELDS, tables.TEACHER_STUDY_BASE)

def study_records(folder):
    return with_raw_weights(records_in([folder], lambda r: r.get("holdout"),
                                       "results with held-out images (--holdout)"))

def with_raw_weights(records):
    """records, plus for each --ema run the arm without averaging: its raw net's errors are
    those of the same run without --ema (averaging never touches training), so one run
    measures both. Skipped where that run exists on its own (the same seed and arm)."""
    raw = [{**r, "params": {**r["params"], "ema": 0.0}, "val_errors": r["raw_val_errors"],
            "test_errors": r["raw_test_errors"]}
           for r in records if r["params"].get("ema") and "raw_val_errors" in r]

    def run_of(r):  # what decides a run's numbers
        return (sorted(r["params"].items()), r["seed"], r["model"], r["architecture"],
                r.get("teacher"), r.get("jitter"), r.get("holdout"))
    seen = [run_of(r) for r in records]
    return records + [p for p in raw if run_of(p) not in seen]

def study_table(records, arm_of=study_arm):
    """A recipe study: one row per arm (seeds pooled), best validation errors first, per teacher.
    Chosen by val_errors (held-out training images); test errors are shown, never used."""
    arms = grouped(records, arm_of)
    lines = ["| arm (what differs from the starting recipe) | val errors (of 10,000 held out) | "
             "test errors | seeds | epochs | wall-clock per run |", "|---|---|---|---|---|---|"]
    # validation errors compare only under one teacher: the shipped one's arms first
    for arm in sorted(arms, key=lambda arm: (teacher_group(arms[arm][0]),
                                             statistics.mean(r["val_errors"] for r in arms[arm]))):
        runs = arms[arm]
        minutes = statistics.mean(r["wall_s"] for r in runs) / 60
        lines.append(f"| {arm} | {spread([r['val_errors'] for r in runs])} | "
                     f"{spread([r['test_errors'] for r in runs])} | "
                     f"{seeds(runs)} | {runs[0]['epochs']} | {minutes:.1f} min |")
    return "\n".join(lines)

# --- the CNN-teacher and hint experiments
def teacher_of(r):
    """A student's teacher: its architecture, or for runs that did not record it, its file."""
    if r["model"] != "student":
        return ""
    return r.get("teacher_architecture") or os.path.basename(r.get("teacher", ""))

class CnnKey(namedtuple("CnnKey", "dataset model architecture method teacher epochs lr "
                        "teacher_key alpha subset holdout omit only jitter flip dropout_input "
                        "dropout_hidden max_norm batch")):
    """A row of the CNN / hint table: all that defines a run but its seed. method: how it learned;
    teacher: a student's teacher in words (its net, its recipe per seed); teacher_key: that
    teacher's recipe or file in full; batch: a minibatch other than the recipe's."""

def cnn_key(r):
    config = r.get("config", {})
    teacher = ", ".join(filter(None, [r.get("teacher_architecture") if "teacher_run" in r
                                      else teacher_of(r), teacher_note(r)]))  # not per seed
    return CnnKey(r.get("dataset", "mnist"), r["model"], r["architecture"], method(r), teacher,
                  r["epochs"], learning_rate(r), teacher_key(r), r.get("alpha"),
                  r.get("subset", 1.0), r.get("holdout", 0), tuple(r.get("omit", [])),
                  tuple(r.get("only", [])), r.get("jitter", 0), r.get("flip", False),
                  config.get("dropout_input"), config.get("dropout_hidden"),
                  config.get("max_norm"), batch_size(r))

def hard_label_twin(r):
    """The run of the same net on hard labels that a student's gain is measured against."""
    return r.get("dataset", "mnist"), r["architecture"], r["seed"], r["epochs"], r.get("subset", 1.0)

def cnn_table(records, strict=False):
    """The CNN-teacher and hint experiments: one row per (dataset, net, method) over seeds; a
    student's gain is its test errors minus those of the same net on hard labels, per seed."""
    groups = grouped(records, cnn_key)
    hard = {hard_label_twin(r): r["test_errors"] for r in records if r["model"] == "small"}
    lines = ["| dataset | net | method | teacher | test errors | error % | vs hard labels, per "
             "seed | seeds | epochs, lr |", "|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(groups, key=lambda k: (k.dataset, ORDER[k.model], -len(k.architecture),
                                             k.architecture, groups[k][0].get("T") or 0, k.method)):
        runs = groups[key]
        errors = [r["test_errors"] for r in runs]
        gains = [r["test_errors"] - hard[hard_label_twin(r)] for r in runs
                 if key.model == "student" and hard_label_twin(r) in hard]
        gain = spread(gains) if gains and len(gains) == len(runs) else ""
        net = f"{key.dataset}, {key.model} {key.architecture}, {key.method}"
        teacher = key.teacher + marks(f"{net}, {key.teacher}", runs, strict)
        lines.append(f"| {key.dataset} | {key.model} {key.architecture} | {key.method} | {teacher} | "
                     f"{spread(errors)} | {100 * statistics.mean(errors) / runs[0]['test_count']:.2f} | "
                     f"{gain} | {len(runs)} ({seeds(runs)}) | {key.epochs}, lr {key.lr:g}"
                     f"{batch_note(key.batch)} |")
    return "\n".join(lines + [""] + cnn_verdicts(groups))

Way = namedtuple("Way", "label errors")  # a way a net was trained, its test errors by seed

def cnn_verdicts(groups):
    """Per (dataset, net trained several ways): which way won, and by how much over the next,
    as a per-seed paired difference (mean ± std), whatever the sign."""
    by_net = {}
    for key, runs in groups.items():
        if key.model != "teacher":
            label = key.method + (f", {key.teacher}" if "teacher_run" in runs[0] else
                                  f", teacher {key.teacher}" if key.teacher else "") + batch_note(key.batch)
            by_net.setdefault((key.dataset, key.architecture), []).append(
                Way(label, {r["seed"]: r["test_errors"] for r in runs}))
    lines = []
    for (data, arch), ways in sorted(by_net.items()):
        ways.sort(key=lambda w: statistics.mean(w.errors.values()))
        distilled = [w for w in ways if w.label != "hard labels"]
        for head, pool in (("", ways), ("among the distilled ones, ", distilled)):
            if head and ways[0].label != "hard labels":
                continue  # the first line already compared the best distilled way
            line = compare(pool, f"{data}, {arch}: {head}")
            lines += [line] if line else []
    return lines

def compare(ways, head):
    """'- HEAD fewest errors with *A* (mean); the next, *B*, makes d ± s more per seed', or None."""
    if len(ways) < 2:
        return None
    best, second = ways[0], ways[1]
    both = [s for s in sorted(best.errors) if s in second.errors]
    paired = [second.errors[s] - best.errors[s] for s in both]
    if len(paired) < 2:
        return None
    return (f"- {head}fewest errors with *{best.label}* ({statistics.mean(best.errors.values()):.1f}); "
            f"the next, *{second.label}*, makes {statistics.mean(paired):.1f} ± "
            f"{statistics.stdev(paired):.1f} more per seed (seeds {', '.join(map(str, both))}).")

# --- the checkpoints shipped in models/
def models_table(folder):
    """One row per shipped checkpoint: what it is and the test errors its JSON records."""
    lines = ["| checkpoint | dataset | net | test errors | seed | epochs | notes |", "|" + "---|" * 7]
    for path in sorted(glob.glob(os.path.join(folder, "*.pt"))):
        name = os.path.splitext(path)[0] + ".json"
        if not os.path.exists(name):
            fail(f"{path} has no results file {name}")
        [r] = load_records([name])
        notes = [f"T={r['T']:g}, alpha={r['alpha']:g}"] if r.get("T") else []
        if r.get("experiment"):
            notes.append(f"{r['experiment']}, {r['variant']}, bias shift {r['bias_shift']:+.2f}")
        if logit_method(r):
            notes.append(f"by {logit_method(r)}")
        if r.get("hint_weight"):
            notes.append(f"hint{tables.hint_version(r)} {'→'.join(r['hint_layers'])} x{r['hint_weight']:g}")
        if r.get("jitter"):
            notes.append(f"jitter {r['jitter']}px")
        if r["model"] == "student":
            notes.append(f"teacher: {teacher_of(r)}")
        lines.append(f"| `{path}` | {r.get('dataset', 'mnist')} | {r['model']} {r['architecture']} | "
                     f"{r['test_errors']} | {r['seed']} | {r['epochs']} | {'; '.join(notes)} |")
    return "\n".join(lines)

# --- the command line (tables.py's main runs it)
def arguments(argv):
    parser = tables.OneLineErrors(description=tables.__doc__, allow_abbrev=False,  # --chek: a typo
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("paths", nargs="+", help="results JSON files or folders of them")
    add("--models", metavar="DIR", help="also a table of the checkpoints in DIR")
    add("--study", metavar="DIR", help="also the student recipe study: DIR's runs with held-out images")
    add("--teacher-study", metavar="DIR", help="also the teacher recipe study: DIR's runs with "
        "held-out images")
    add("--cnn", metavar="PATH", nargs="+", help="also the table of the CNN-teacher and hint "
        "experiments: the runs in these folders and files")
    add("--plots", metavar="DIR", help="also draw the figures into DIR (needs matplotlib, an extra)")
    add("--cost", action="store_true", help="also the table of the core-hours each table's runs took")
    add("--headline", action="store_true", help="also the first table: paired and legacy paper rows")
    add("--demo", metavar="DIR", help="also the quick demo's line: DIR's runs against the full run")
    add("--write", metavar="FILE", nargs="+", help="replace the tables in these files (README.md, "
        "docs/*.md): each block in the one file that holds its markers")
    add("--check", metavar="FILE", nargs="*", help="write nothing; exit 1 if the tables in these "
        "files (by default --write's) differ from what the results give, 0 if not")
    add("--strict", action="store_true", help="refuse rows of uncommitted or unrecorded code and "
        "rows whose students all learned from one teacher")
    args = parser.parse_args(argv)
    if args.check == [] and not args.write:
        fail("--check needs a README: --check README, or --write README --check")
    args.check = args.write if args.check == [] else args.check  # --write README --check
    return args

def records_in(paths, keep=lambda r: True, what="results JSON files"):
    """The records in these files and folders that `keep` keeps; none: bad input."""
    records = [r for r in load_records(paths) if keep(r)]
    if not records:
        fail(f"no {what} in {' '.join(paths)}")
    return records

def main(argv=None):
    import readme_blocks  # here, not at the top: it imports this file
    args = arguments(argv)
    records = records_in(args.paths)
    # distillation_no_three.py runs: the as-trained record holds all of its variants
    dark = [r for r in records if r.get("variant") == "as trained"]
    swept = swept_architectures([r for r in records if "experiment" not in r])
    sweeps = [r for r in records if "experiment" not in r and is_sweep(r, swept)]
    plain = [r for r in records if "experiment" not in r and not is_sweep(r, swept)]
    study, teacher_study = (study_records(folder) if folder else []
                            for folder in (args.study, args.teacher_study))
    cnn, models = (records_in(paths) if paths else []
                   for paths in (args.cnn, args.models and [args.models]))
    blocks = {"results": plain and tables.table(plain, args.strict),  # strict: refuse marked rows
              "temperature-sweep": sweeps and sweep_table(sweeps, args.strict),
              "dark-knowledge": dark and dark_knowledge_table(dark, args.strict),
              "models": args.models and models_table(args.models),
              "student-study": study and study_table(study),
              "teacher-study": teacher_study and study_table(teacher_study, teacher_arm),
              "cnn": cnn and cnn_table(cnn, args.strict),
              "cost": args.cost and tables.cost_table({
                  "results": plain, "temperature sweeps": sweeps, "dark knowledge": dark,
                  "student study": study, "teacher study": teacher_study, "CNN and hints": cnn}),
              "headline": args.headline and readme_blocks.headline_table(plain, dark),
              "demo": args.demo and readme_blocks.demo_block(records_in([args.demo]), plain, models)}
    blocks = {name: tables.with_notes(text) for name, text in blocks.items() if text}
    if args.check:
        return readme_blocks.check_files(args.check, blocks)  # exit 1 if any is stale
    if args.write:
        readme_blocks.refresh_files(args.write, blocks)
    print("".join(text + "\n\n" for text in blocks.values()), end="")
    if args.plots:
        draw(args.plots, sweeps, plain)

def draw(folder, sweeps, plain):
    """The sweep figure and the learning curves of the paper's three nets (seed 1)."""
    import plots
    try:
        plots.pyplot()
    except ImportError as e:
        fail(str(e))
    if sweeps:
        print("wrote", plots.temperature_sweep(sweeps, os.path.join(folder, "temperature_sweep.png"),
                                               sweep_label))
    curves = []
    for model, label in (("teacher", "teacher"), ("small", "small net, hard labels"),
                         ("student", "distilled student, T = 20")):
        runs = sorted((r for r in plain if r["model"] == model and r["seed"] == 1
                       and tables.paper_setting(tables.row_key(r)) and batch_size(r) is None),
                      key=lambda r: -r["epochs"])  # the paper's row at the recipe's defaults
        if runs:
            curves.append((f"{label} ({runs[0]['test_errors']} at epoch {runs[0]['epochs']})", runs[0]))
    if curves:
        print("wrote", plots.learning_curves(curves, os.path.join(folder, "learning_curves.png")))
