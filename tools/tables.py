r"""Regenerate the tables of README.md and docs/ from the JSON files the scripts wrote.

    python tools/tables.py results/reproduction --models models              # print the tables
    python tools/tables.py results/reproduction --study results/student_study --models models \
        --teacher-study results/teacher_study --cnn results/cnn_and_hints \
        results/reproduction/distilled_model_800_20_lr0.02_s*.json --demo results/demo \
        --headline --cost --plots docs --write README.md docs/*.md   # each block into the file
    python tools/tables.py ... --write README.md docs/*.md --check   # of its markers; 1: stale

Runs that differ only in their seed form one row: mean ± sample std and min-max over seeds,
so nothing is typed or rounded by hand. A distilled student of seed s learns from the teacher
of seed s (its teacher_run), one recipe of teacher per row; rows of students from one teacher
for all seeds (records without teacher_run) are marked †, rows of uncommitted or unrecorded
code ‡, and --strict refuses both. Only a row of the paper's own setting gets its number.

Three files: this one holds the shared helpers, the main table, the cost table and the README's
blocks; study_tables.py the other tables and the command line; readme_blocks.py the headline and
demo blocks and the writing to several files. Each imports this file; this file imports
study_tables only inside main(), when the command runs, so there is no import cycle.
"""
import argparse
import glob
import json
import os
import statistics
import sys
from collections import namedtuple

sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the scripts, one folder up
import training_params as tp

# (model, architecture, T) -> the paper's test errors (its section 3)
PAPER = {("teacher", "784-1200-1200-10", None): 67, ("small", "784-800-800-10", None): 146,
         ("student", "784-800-800-10", 20.0): 74}
PAPER_TEACHER = "784-1200-1200-10"  # the net the paper's student learned from
ORDER = {"teacher": 0, "small": 1, "student": 2}
# issue 6's targets for the mean over seeds: (what, test)
TARGETS = {("teacher", "784-1200-1200-10", None): ("≤ 67", lambda mean: mean <= 67),
           ("small", "784-800-800-10", None): ("146 ± 5", lambda mean: abs(mean - 146) <= 5),
           ("student", "784-800-800-10", 20.0): ("≤ 74", lambda mean: mean <= 74)}
SEEDS = 3  # a target is judged on the mean of this many seeds

class OneLineErrors(argparse.ArgumentParser):
    def error(self, message):
        fail(f"{message} (see --help)")

def fail(message):
    """Bad input: one line on stderr, exit code 2."""
    print(f"{os.path.basename(sys.argv[0])}: error: {message}", file=sys.stderr)
    sys.exit(2)

def load_records(paths):
    files = []
    for path in paths:
        files += sorted(glob.glob(os.path.join(path, "*.json"))) if os.path.isdir(path) else [path]
    records = []
    for name in files:
        try:
            with open(name) as f:
                record = json.load(f)
        except (OSError, ValueError) as e:
            fail(f"cannot read {name!r} ({type(e).__name__}); pass results JSON files or "
                 "folders of them")
        if isinstance(record, dict) and "test_errors" in record and "seed" in record:
            records.append({**record, "_path": name})
    return records

def grouped(records, key_of):
    """{key: its records, by seed}: the rows of a table."""
    groups = {}
    for r in records:
        groups.setdefault(key_of(r), []).append(r)
    return {key: sorted(runs, key=lambda r: r["seed"]) for key, runs in groups.items()}

def seeds(runs):  # '1, 2, 3'
    return ", ".join(str(r["seed"]) for r in runs)

def spread(values, digits=1):
    """'mean ± std (min-max)' over seeds, or the one value (the seeds column says how many)."""
    def show(v):
        return str(v) if isinstance(v, int) else f"{v:.{digits}f}"
    if len(set(values)) == 1:  # one seed, or the same on every seed (a fixed shift)
        return show(values[0])
    return (f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f} "
            f"({show(min(values))}-{show(max(values))})")

# --- what a run was: the words and values the row keys of both files are made of
def setting(field, value):
    """'field value', a float as %g: how a recipe's field reads in a label."""
    return f"{field} {value:g}" if isinstance(value, float) else f"{field} {value}"

def changed(params, fields, base):
    """The `fields` where params differ from base, in words."""
    return [setting(k, params[k]) for k in fields if k in params and params[k] != base.get(k)]

# the teacher study's arms differ from the recipe it started from (LocalParams' teacher at 300
# epochs) in these fields; a student's teacher is described against the same recipe
TEACHER_STUDY_FIELDS = ["teacher_epochs", "lr", "lr_schedule", "optimizer", "batch_size", "ema",
                        "max_norm", "dropout_input", "dropout_hidden", "jitter", "momentum"]
TEACHER_STUDY_BASE = {**tp.as_dict(tp.LocalParams()), "teacher_epochs": 300}

def teacher_key(r):
    """What a student learned from, for row keys: its teacher's recipe (epochs, params, holdout)
    where it recorded teacher_run (each seed its own teacher), else the teacher's file."""
    run = r.get("teacher_run")
    if not run:
        return r.get("teacher")
    params = {k: v for k, v in (run.get("params") or {}).items()  # what the teacher read
              if k not in tp.STUDENT_ONLY | {"epochs"}}
    return json.dumps([run.get("epochs"), params, run.get("holdout") or 0], sort_keys=True)

def teacher_note(r):
    """A seed-paired student's teacher recipe in words ('' for other records)."""
    run = r.get("teacher_run")
    if not run:
        return ""
    params = {**(run.get("params") or {}), "teacher_epochs": 300}  # its epochs are said apart
    return ", ".join([f"{run.get('epochs')}-epoch teacher per seed"]
                     + ([f"{run['holdout']} held out"] if run.get("holdout") else [])
                     + changed(params, TEACHER_STUDY_FIELDS, TEACHER_STUDY_BASE))

def batch_size(r):
    """The run's minibatch size, None where it is its recipe's default (most rows)."""
    params, field = r["params"], "distill_batch_size" if r["model"] == "student" else "batch_size"
    size = tp.recorded(params, field)
    default = getattr(tp.PARAMS_BY_NAME.get(params.get("name")), field, None)
    return None if size == default else size

def batch_note(size):
    """', batch N' for a minibatch other than the recipe's default, else ''."""
    return f", batch {size}" if size else ""

# recipe fields the rest of a row key leaves out: two recipes differing only there never pool
RECIPE_REST = ("optimizer", "nesterov", "lr_schedule", "lr_decay", "momentum", "momentum_start",
               "momentum_ramp_epochs", "dampening", "init_std", "standardize",
               "distill_warmup_steps")

def recipe_changes(r):
    """(field, value) for each field of RECIPE_REST where the run left its recipe's default (a
    field its record predates: the default of today, which is what the older code ran with)."""
    default = tp.PARAMS_BY_NAME.get(r["params"].get("name"))
    ran = {f: r["params"].get(f, getattr(default, f, None)) for f in RECIPE_REST}
    return tuple((f, v) for f, v in ran.items() if v != getattr(default, f, None))

def learning_rate(r):
    """The run's peak learning rate: the recipe's distill_lr for a student, lr otherwise."""
    return r["params"].get("distill_lr" if r["model"] == "student" else "lr")

def logit_method(r):
    """The logit loss of a student other than KD (Hinton et al.'s, the only one of records
    without "method"), in words, e.g. 'DKD (TCKD x1, NCKD x8)'; '' for KD and other nets."""
    name = r.get("method", "kd") if r["model"] == "student" else "kd"
    if name == "kd":
        return ""
    if name == "dkd":
        return f"DKD (TCKD x{r['dkd_alpha']:g}, NCKD x{r['dkd_beta']:g})"
    return name.upper()

def hint_version(r):
    """' v2' for hint runs of FitNets' own recipe (regressor + ReLU, middle layers, 1/2 * sum of
    squares, an unweighted first stage: "hint_version": 2), '' for the older ones without it."""
    return f" v{r['hint_version']}" if r.get("hint_version", 1) != 1 else ""

def method(r):
    """How a net learned, in words (the CNN table's method column)."""
    if r["model"] != "student":
        shifts = f", ±{r['jitter']} px shifts" if r.get("jitter") else ""
        return f"hard labels{shifts}{', flips' if r.get('flip') else ''}"
    by = logit_method(r)
    words = f"distilled{f' by {by}' if by else ''}, T={r['T']:g}" + (
        ", teacher dropout on" if r["params"].get("teacher_dropout") else "")
    hint = f"hint{hint_version(r)}"
    if r.get("hint_stages") == 1:
        words += f" + {hint} {'→'.join(r['hint_layers'])} x{r['hint_weight']:g}, one stage"
    elif r.get("hint_stages") == 2:
        words += (f", after {r['hint_epochs']} epochs of {hint} {'→'.join(r['hint_layers'])} "
                  "alone (two stages)")
    return words

# --- the marks † and ‡, and --strict
UNPAIRED, DIRTY = "†", "‡"
NOTES = {UNPAIRED: "not seed-paired: students of all seeds learned from one teacher, so the "
                   "spread over seeds leaves out the teacher's",
         DIRTY: "from uncommitted or unrecorded code (a code_version ending in -dirty, or none)"}

def marks(label, runs, strict=False):
    """' †', ' ‡', ' †‡' or '' for a table row. Refuses (exit 2) a row whose students learned
    from a teacher of another seed or from teachers of several recipes, and with strict any row
    it would mark, naming the files that earn the mark."""
    seed_list = [r["seed"] for r in runs]
    twice = sorted({s for s in seed_list if seed_list.count(s) > 1})
    if twice:
        fail(f"{label}: seed {', '.join(map(str, twice))} twice "
             f"({files([r for r in runs if r['seed'] in twice])}): keep one run per seed")
    students = [r for r in runs if r["model"] == "student"]
    for r in students:
        if "teacher_run" in r and r["teacher_run"].get("seed") != r["seed"]:
            fail(f"{label}: the student of seed {r['seed']} learned from a teacher of seed "
                 f"{r['teacher_run'].get('seed')} ({files([r])}): seeds must pair")
    if len({teacher_key(r) for r in students}) > 1:
        fail(f"{label}: students of one row learned from teachers of different recipes "
             f"({files(students)})")

    def dirty(run):
        return str(run.get("code_version") or "-dirty").endswith("-dirty")
    found = {UNPAIRED: [r for r in students if "teacher_run" not in r],  # the run or its teacher
             DIRTY: [r for r in runs if dirty(r) or dirty(r.get("teacher_run") or r)]}
    for mark, bad in found.items():
        if strict and bad:
            fail(f"--strict: {label}: {NOTES[mark]} ({files(bad)})")
    shown = "".join(mark for mark, bad in found.items() if bad)
    return f" {shown}" if shown else ""

def files(runs):
    """The results files of these runs, for messages."""
    return ", ".join(sorted({r.get("_path", f"seed {r['seed']}") for r in runs}))

def with_notes(text):
    """A table and, under it, a line for each marker it uses."""
    notes = [f"{mark} {note}." for mark, note in NOTES.items() if mark in text]
    return "\n".join([text, ""] + notes) if notes else text

def verdict(what, ok, runs):
    """'WHAT: met' or 'WHAT: MISSED', or, before all seeds are in, no verdict."""
    if len(runs) < SEEDS:
        return f"{what}: no verdict yet, {len(runs)} of {SEEDS} seeds"
    return f"{what}: {'met' if ok else 'MISSED'}"

# --- the main table
class RowKey(namedtuple("RowKey", "model architecture T alpha recipe epochs jitter omit only "
                        "subset lr precision recipe_changes dataset holdout teacher method "
                        "logit_loss batch teacher_dropout ema flip hints teacher_holdout "
                        "teacher_architecture")):
    """A row of the main table: all that defines an experiment but the seed (rows the table's
    order ties go in the order of these fields). recipe: the params' name; subset: the share of
    the training images used; recipe_changes: (field, value) where the run left its recipe;
    teacher: teacher_key; method: how it learned, in words; logit_loss: a loss other than KD;
    batch: a minibatch other than the recipe's; ema: the weight average's decay, 0 for none."""

def row_key(r):
    """A record's row of the main table."""
    params, run = r["params"], r.get("teacher_run") or {}
    return RowKey(
        model=r["model"], architecture=r["architecture"], T=r.get("T"), alpha=r.get("alpha"),
        recipe=params["name"], epochs=r["epochs"], jitter=r.get("jitter", 0),
        omit=tuple(r.get("omit", [])), only=tuple(r.get("only", [])), subset=r.get("subset", 1.0),
        lr=learning_rate(r), precision=r.get("precision", "fp32"), recipe_changes=recipe_changes(r),
        dataset=r.get("dataset", "mnist"), holdout=r.get("holdout") or 0, teacher=teacher_key(r),
        method=method(r), logit_loss=logit_method(r), batch=batch_size(r),
        teacher_dropout=params.get("teacher_dropout", False), ema=params.get("ema") or 0.0,
        flip=bool(r.get("flip")), hints=bool(r.get("hint_stages")),
        teacher_holdout=run.get("holdout") or 0,
        teacher_architecture=r.get("teacher_architecture") if r["model"] == "student" else None)

def departures(key):
    """Each way a row left the paper's setting that its label must say, in words (its loss,
    temperature, alpha and jitter are said apart)."""
    other_teacher = key.teacher_architecture not in (None, PAPER_TEACHER)
    return [word for word in [
        "teacher dropout on" if key.teacher_dropout else "",
        "" if key.precision == "fp32" else key.precision,
        f"omit {list(key.omit)}" if key.omit else f"only {list(key.only)}" if key.only else "",
        f"{key.subset:g} of the images" if key.subset < 1 else "",
        "" if key.dataset == "mnist" else key.dataset,
        f"{key.holdout} images held out" if key.holdout else "",
        setting("ema", key.ema) if key.ema else "",
        *(setting(field, value) for field, value in key.recipe_changes),
        "flips" if key.flip else "", "hints" if key.hints else "",
        f"teacher {key.teacher_architecture}" if other_teacher else ""] if word]

def describe_row(key):
    """A row's label: the net, its loss, temperature and jitter, and each of its departures."""
    name = {"teacher": "teacher", "small": "small net, hard labels", "student": "distilled"}
    head = f"{name[key.model]} {key.architecture}" + (f" by {key.logit_loss}" if key.logit_loss else "")
    return ", ".join([head] + ([f"T={key.T:g}, alpha={key.alpha:g}"] if key.T is not None else [])
                     + ([f"jitter {key.jitter}px"] if key.jitter else []) + departures(key))

def paper_setting(key):
    """The paper's own rows: its nets in its roles, students by its loss at its alpha, the
    teacher alone jittered, and nothing its label would have to add (see departures), nor a
    teacher that held images out. Only they get the paper's number and a target."""
    return ((key.model, key.architecture, key.T) in PAPER and not key.logit_loss
            and key.alpha in (None, 0.9) and (key.jitter == 0) == (key.model != "teacher")
            and not key.teacher_holdout and not departures(key))

def target_verdict(key, runs, records):
    """'met' / 'MISSED' against TARGETS for the paper's rows; a distilled net must also beat the
    hard-label small net (same architecture and recipe) of each of its seeds."""
    if not paper_setting(key):
        return ""
    what, test = TARGETS[(key.model, key.architecture, key.T)]
    ok = test(statistics.mean(r["test_errors"] for r in runs))
    if key.model == "student":
        what += ", below the small net of each seed"
        small = {r["seed"]: r["test_errors"] for r in records if r["model"] == "small"
                 and r["architecture"] == key.architecture and r["params"]["name"] == key.recipe
                 and paper_setting(row_key(r))}
        ok = ok and all(r["seed"] in small and r["test_errors"] < small[r["seed"]] for r in runs)
    return verdict(what, ok, runs)

def consistent_teacher_verdict(key, runs):
    """Beyond the paper: a student on the jittered transfer set, the teacher run on each shifted
    batch, aims at the test errors of the teacher it learns from (mean over seeds)."""
    teachers = [r.get("teacher_test_errors") for r in runs]
    paired = all("teacher_run" in r for r in runs)
    if key.model != "student" or not key.jitter or key.omit or key.only or key.subset < 1 \
            or None in teachers or (len(set(teachers)) != 1 and not paired):
        return ""
    errors = statistics.mean(teachers)
    ok = statistics.mean(r["test_errors"] for r in runs) <= errors
    return verdict(f"≤ its teachers' mean {errors:.1f}" if paired else
                   f"≤ its teacher's {teachers[0]}", ok, runs)

def row_order(key):
    """Per model: the paper's settings first, the recipe's own minibatch and the longest run
    first, then the ablations."""
    return (ORDER[key.model], key.architecture, key.T or 0, not paper_setting(key), key.subset < 1,
            key.alpha or 0, key.batch is not None, -key.epochs, str(tuple(key)))

def table(records, strict=False):
    groups = grouped(records, row_key)
    lines = ["| experiment | paper | ours: mean ± std | min-max | seeds | recipe, epochs, lr | "
             "wall-clock per run | hardware | target |", "|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(groups, key=row_order):
        runs = groups[key]
        errors = [r["test_errors"] for r in runs]
        std = f" ± {statistics.stdev(errors):.1f}" if len(errors) > 1 else " (one seed)"
        paper = PAPER[(key.model, key.architecture, key.T)] if paper_setting(key) else ""
        wall = statistics.mean(r["wall_s"] for r in runs) / 60
        hardware = sorted({r.get("hardware", r["device"]) + threads(r) for r in runs})
        label = ", ".join(filter(None, [describe_row(key), teacher_note(runs[0])]))
        label += marks(label, runs, strict)
        lines.append(f"| {label} | {paper} | {statistics.mean(errors):.1f}{std} | "
                     f"{min(errors)}-{max(errors)} | {len(runs)} ({seeds(runs)}) | "
                     f"{key.recipe}, {key.epochs}{f', lr {key.lr:g}' if key.lr else ''}"
                     f"{batch_note(key.batch)} | {wall:.1f} min | {'; '.join(hardware)} | "
                     f"{target_verdict(key, runs, records) or consistent_teacher_verdict(key, runs)} |")
    return "\n".join(lines)

def threads(r):
    """How many threads the run used, when it recorded it (the runs here: one per core)."""
    return f", {r['threads']} thread{'s' if r['threads'] > 1 else ''}" if "threads" in r else ""

# --- the README's generated blocks, the cost table and the way into the command line
def write_between_markers(path, text, name="results"):
    """Replace what lies between <!-- NAME:begin --> and <!-- NAME:end --> in `path`."""
    refresh(path, {name: text})

def refresh(path, blocks, write=True):
    """Put each block's text between <!-- NAME:begin --> and <!-- NAME:end --> in `path`, in
    one write (or none: write=False); the names of the blocks whose text changed."""
    try:
        with open(path) as f:
            content = f.read()
    except OSError as e:
        fail(f"cannot read {path!r} ({type(e).__name__})")
    stale = []
    for name, text in blocks.items():
        begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        if begin not in content or end not in content.split(begin, 1)[-1]:
            fail(f"{path} has no {begin} ... {end} block to replace")
        head, rest = content.split(begin, 1)
        old, tail = rest.split(end, 1)
        if old != f"\n{text}\n":
            stale.append(name)
            content = f"{head}{begin}\n{text}\n{end}{tail}"
    if write and stale:
        tmp = f"{path}.tmp{os.getpid()}"  # renamed over the file: never a half-written README
        with open(tmp, "w") as f:
            f.write(content)
        os.replace(tmp, path)
    return stale

def cost_table(tables):
    """The core-hours each table's runs took, summed from their recorded wall-clock times the
    threads each used, and on which machines."""
    lines = ["| table | runs | core-hours | machines |", "|---|---|---|---|"]
    seen, total = set(), 0.0
    for name, runs in tables.items():
        runs = {os.path.realpath(r["_path"]): r for r in runs}  # a file read twice counts once
        runs = [r for path, r in runs.items() if path not in seen]
        seen.update(os.path.realpath(r["_path"]) for r in runs)
        if not runs:
            continue
        hours = sum(r["wall_s"] * r.get("threads", 1) for r in runs) / 3600
        total += hours
        machines = sorted({r.get("hardware", r["device"]) for r in runs})
        lines.append(f"| {name} | {len(runs)} | {hours:.1f} | {'; '.join(machines)} |")
    lines.append(f"| all of them | {len(seen)} | {total:.1f} | |")
    return "\n".join(lines)

def main(argv=None):
    import study_tables  # here, not at the top: study_tables imports this file
    study_tables.main(argv)

if __name__ == "__main__":
    main()
