r"""Regenerate the README's results tables from the JSON files the scripts wrote.

    python tools/tables.py results/reproduction --models models              # print the tables
    python tools/tables.py results/reproduction --models models --write README.md
    python tools/tables.py results/reproduction --study results/student_study --models models \
        --teacher-study results/teacher_study --cnn results/cnn_and_hints \
        results/reproduction/distilled_model_800_20_lr0.02_s*.json \
        --cost --plots docs --write README.md    # every table of the README made from results files
    python tools/tables.py ... --write README.md --check     # exit 1 if README's tables are stale

Runs that differ only in their seed form one row: mean ± sample std and min-max over seeds,
so nothing is typed or rounded by hand. A distilled student of seed s learns from the teacher
of seed s (its teacher_run), one recipe of teacher per row; rows of students from one teacher
for all seeds (records without teacher_run) are marked †, rows of uncommitted or unrecorded
code ‡, and --strict refuses both.
"""
import argparse
import glob
import json
import os
import statistics
import sys

sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the scripts, one folder up
import training_params as tp

# (model, architecture, T) -> the paper's test errors (its section 3)
PAPER = {("teacher", "784-1200-1200-10", None): 67, ("small", "784-800-800-10", None): 146,
         ("student", "784-800-800-10", 20.0): 74}
ORDER = {"teacher": 0, "small": 1, "student": 2}
# issue 6's targets for the mean over seeds: (what, test)
TARGETS = {("teacher", "784-1200-1200-10", None): ("≤ 67", lambda mean: mean <= 67),
           ("small", "784-800-800-10", None): ("146 ± 5", lambda mean: abs(mean - 146) <= 5),
           ("student", "784-800-800-10", 20.0): ("≤ 74", lambda mean: mean <= 74)}


class OneLineErrors(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):  # no prefixes: --chek is a typo, not --check
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})

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


def row_key(r):
    """Everything that defines an experiment except the seed."""
    return (r["model"], r["architecture"], r.get("T"), r.get("alpha"), r["params"]["name"],
            r["epochs"], r.get("jitter", 0), tuple(r.get("omit", [])), tuple(r.get("only", [])),
            r.get("subset", 1.0), learning_rate(r),
            (r.get("precision", "fp32"), recipe_rest(r), r.get("dataset", "mnist"), r.get("holdout", 0),
             teacher_key(r), method(r), logit_method(r), batch_size(r),
             r["params"].get("teacher_dropout", False)))


UNPAIRED, DIRTY = "†", "‡"
NOTES = {UNPAIRED: "not seed-paired: students of all seeds learned from one teacher, so the "
                   "spread over seeds leaves out the teacher's",
         DIRTY: "from uncommitted or unrecorded code (a code_version ending in -dirty, or none)"}


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
    arm = teacher_arm({"model": "teacher", "architecture": "784-1200-1200-10",  # epochs said apart
                       "params": {**(run.get("params") or {}), "teacher_epochs": 300}})
    return (f"{run.get('epochs')}-epoch teacher per seed"
            + (f", {run['holdout']} held out" if run.get("holdout") else "")
            + ("" if arm.startswith("none") else f", {arm}"))


def marks(label, runs, strict=False):
    """' †', ' ‡', ' †‡' or '' for a table row. Refuses (exit 2) a row whose students learned
    from a teacher of another seed or from teachers of several recipes, and with strict any row
    it would mark."""
    seeds = [r["seed"] for r in runs]
    if len(set(seeds)) < len(seeds):
        twice = sorted({s for s in seeds if seeds.count(s) > 1})
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
RECIPE_REST = ("optimizer", "nesterov", "lr_schedule", "lr_decay", "ema", "momentum",
               "momentum_start", "momentum_ramp_epochs", "dampening", "init_std", "standardize",
               "distill_warmup_steps")


def recipe_rest(r):
    """The values of RECIPE_REST the run used (a field its record predates: the recipe's
    default of today, which is what the older code ran with)."""
    default = tp.PARAMS_BY_NAME.get(r["params"].get("name"))
    return tuple(r["params"].get(f, getattr(default, f, None)) for f in RECIPE_REST)


def learning_rate(r):
    """The run's peak learning rate: the recipe's distill_lr for a student, lr otherwise."""
    return r["params"].get("distill_lr" if r["model"] == "student" else "lr")


def describe_row(key):
    model, arch, T, alpha, params, epochs, jitter, omit, only, subset, lr, other = key
    name = {"teacher": "teacher", "small": "small net, hard labels", "student": "distilled"}[model]
    parts = [f"{name} {arch}"]
    if other[6]:
        parts[0] += f" by {other[6]}"
    if T is not None:
        parts.append(f"T={T:g}, alpha={alpha:g}")
    if jitter:
        parts.append(f"jitter {jitter}px")
    if other[-1]:
        parts.append("teacher dropout on")
    if other[0] != "fp32":
        parts.append(other[0])
    if omit or only:
        parts.append(f"omit {list(omit)}" if omit else f"only {list(only)}")
    if subset < 1:
        parts.append(f"{subset:g} of the images")
    return ", ".join(parts)


# (experiment, variant) -> the paper's (test errors, errors on the missing classes or None),
# also issue 6's targets for our means (test errors as a % for only78)
PAPER_DARK = {("wo3", "as trained"): ("206", "133"), ("wo3", "fixed shift"): ("109", "14"),
              ("only78", "as trained"): ("47.3%", None), ("only78", "fixed shift"): ("13.2%", None)}


def dark_verdict(paper, shown, missing):
    """'met' / 'MISSED': our means at most the paper's numbers."""
    if not paper[0]:
        return ""
    ok = statistics.mean(shown) <= float(paper[0].rstrip("%"))
    if paper[1]:
        ok = ok and statistics.mean(missing) <= float(paper[1])
    return verdict("", ok, shown)[2:]


def spread(values, digits=1):
    """'mean ± std (min-max)' over seeds, or the one value (the seeds column says how many)."""
    def show(v):
        return str(v) if isinstance(v, int) else f"{v:.{digits}f}"
    if len(set(values)) == 1:  # one seed, or the same on every seed (a fixed shift)
        return show(values[0])
    return (f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f} "
            f"({show(min(values))}-{show(max(values))})")


def dark_knowledge_table(records, strict=False):
    """One row per (experiment, net, variant) of distillation_no_three.py runs, over seeds."""
    groups = {}
    for r in records:
        key = (r["experiment"], r["model"], r["architecture"], r.get("T"), teacher_key(r),
               r["params"]["name"], r["epochs"], learning_rate(r), batch_size(r))
        groups.setdefault(key, []).append(r)
    lines = ["| transfer set | net | variant | bias shift | test errors | paper | errors on "
             "missing classes | paper | seeds | recipe, epochs, lr | target: at most the paper's |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(groups, key=lambda k: (k[0].startswith("only"), k[1] == "small",
                                             k[-1] is not None, str(k))):  # default batch first
        experiment, model, arch, T, _, params, epochs, lr, batch = key
        runs = sorted(groups[key], key=lambda r: r["seed"])
        net = ", ".join(filter(None, [f"distilled {arch}, T={T:g}" if model == "student" else
                                      f"small {arch}, hard labels", teacher_note(runs[0])]))
        net += marks(f"{experiment}, {net}", runs, strict)
        for variant in ("as trained", "fixed shift", "frequency-matched shift"):
            reports = [r["variants"][variant] for r in runs]
            errors = [v["test_errors"] for v in reports]
            missing = [v["missing_class_errors"] for v in reports]
            percent = experiment.startswith("only")
            shown = [100 * e / v["test_count"] for e, v in zip(errors, reports)] if percent else errors
            paper = PAPER_DARK.get((experiment, variant), ("", "")) if model == "student" else ("", "")
            lines.append(
                f"| {experiment} | {net} | {variant} | {spread([v['bias_shift'] for v in reports], 2)} | "
                f"{spread(shown, 2 if percent else 1)}{'%' if percent else ''} | {paper[0]} | "
                f"{spread(missing)} of {reports[0]['missing_class_count']} | {paper[1] or ''} | "
                f"{len(runs)} ({', '.join(str(r['seed']) for r in runs)}) | {params}, {epochs}"
                f"{f', lr {lr:g}' if lr else ''}{batch_note(batch)} | "
                f"{dark_verdict(paper, shown, missing)} |")
    return "\n".join(lines)


def paper_setting(key):
    """The paper's own rows: all training images, unjittered students at its alpha (ablations
    and other settings get no paper number and no target)."""
    model, arch, T, alpha, params, epochs, jitter, omit, only, subset, lr, other = key
    return (not omit and not only and subset == 1.0 and alpha in (None, 0.9)
            and (jitter == 0) == (model != "teacher") and not other[-1]  # teacher_dropout
            and not other[6])  # a logit loss other than the paper's


def target_verdict(key, runs, records):
    """'met' / 'MISSED' against TARGETS for the paper's rows; a distilled net must also beat the
    hard-label small net (same architecture and recipe) of each of its seeds."""
    model, arch, T = key[0], key[1], key[2]
    if (model, arch, T) not in TARGETS or not paper_setting(key):
        return ""
    what, test = TARGETS[(model, arch, T)]
    ok = test(statistics.mean(r["test_errors"] for r in runs))
    if model == "student":
        what += ", below the small net of each seed"
        small = {r["seed"]: r["test_errors"] for r in records if r["model"] == "small"
                 and r["architecture"] == arch and r["params"]["name"] == key[4]
                 and paper_setting(row_key(r))}
        ok = ok and all(r["seed"] in small and r["test_errors"] < small[r["seed"]] for r in runs)
    return verdict(what, ok, runs)


SEEDS = 3  # a target is judged on the mean of this many seeds


def verdict(what, ok, runs):
    """'WHAT: met' or 'WHAT: MISSED', or, before all seeds are in, no verdict."""
    if len(runs) < SEEDS:
        return f"{what}: no verdict yet, {len(runs)} of {SEEDS} seeds"
    return f"{what}: {'met' if ok else 'MISSED'}"


def consistent_teacher_verdict(key, runs):
    """Beyond the paper: a student on the jittered transfer set, the teacher run on each shifted
    batch, aims at the test errors of the teacher it learns from (mean over seeds)."""
    model, jitter, omit, only, subset = key[0], key[6], key[7], key[8], key[9]
    teachers = [r.get("teacher_test_errors") for r in runs]
    paired = all("teacher_run" in r for r in runs)
    if model != "student" or not jitter or omit or only or subset < 1 or None in teachers \
            or (len(set(teachers)) != 1 and not paired):
        return ""
    errors = statistics.mean(teachers)
    ok = statistics.mean(r["test_errors"] for r in runs) <= errors
    return verdict(f"≤ its teachers' mean {errors:.1f}" if paired else
                   f"≤ its teacher's {teachers[0]}", ok, runs)


def threads(r):
    """How many threads the run used, when it recorded it (the runs here: one per core)."""
    return f", {r['threads']} thread{'s' if r['threads'] > 1 else ''}" if "threads" in r else ""


def table(records, strict=False):
    groups = {}
    for r in records:
        groups.setdefault(row_key(r), []).append(r)
    lines = ["| experiment | paper | ours: mean ± std | min-max | seeds | recipe, epochs, lr | "
             "wall-clock per run | hardware | target |", "|---|---|---|---|---|---|---|---|---|"]
    # per model: the paper's settings first, the recipe's own minibatch and the longest run
    # first, then the ablations
    for key in sorted(groups, key=lambda k: (ORDER[k[0]], k[1], k[2] or 0, not paper_setting(k),
                                             k[9] < 1, k[3] or 0, k[11][-2] is not None, -k[5],
                                             str(k))):
        runs = sorted(groups[key], key=lambda r: r["seed"])
        errors = [r["test_errors"] for r in runs]
        spread = f" ± {statistics.stdev(errors):.1f}" if len(errors) > 1 else " (one seed)"
        paper = PAPER.get((key[0], key[1], key[2]), "") if paper_setting(key) else ""
        wall = statistics.mean(r["wall_s"] for r in runs) / 60
        hardware = sorted({r.get("hardware", r["device"]) + threads(r) for r in runs})
        label = ", ".join(filter(None, [describe_row(key), teacher_note(runs[0])]))
        label += marks(label, runs, strict)
        lines.append(f"| {label} | {paper} | {statistics.mean(errors):.1f}{spread} | "
                     f"{min(errors)}-{max(errors)} | {len(runs)} ({', '.join(str(r['seed']) for r in runs)}) | "
                     f"{key[4]}, {key[5]}{f', lr {key[10]:g}' if key[10] else ''}"
                     f"{batch_note(key[11][-2])} | {wall:.1f} min | {'; '.join(hardware)} | "
                     f"{target_verdict(key, runs, records) or consistent_teacher_verdict(key, runs)} |")
    return "\n".join(lines)


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
    """A sweep's column in the table and its line in the figure: a width, a minibatch and a
    teacher recipe."""
    note, by = teacher_note(r), logit_method(r)
    return (f"distilled {r['architecture']}{f' by {by}' if by else ''}{batch_note(batch_size(r))}"
            f"{f', {note}' if note else ''}")


def sweep_table(records, strict=False):
    """Test errors by temperature (rows) and student width, minibatch and teacher recipe
    (columns), over seeds; a column of students from one teacher is marked in its head."""
    def column(r):
        return r["architecture"], batch_size(r) or 0, str(teacher_key(r)), logit_method(r)
    columns = sorted({column(r) for r in records}, key=lambda c: (-len(c[0]), c[0], c[1], c[2], c[3]))
    label = {column(r): sweep_label(r) for r in records}
    unpaired = {column(r) for r in records if "teacher_run" not in r}
    cells = {}
    for r in records:
        cells.setdefault((r["T"], column(r)), []).append(r)
    lines = ["| T | " + " | ".join(label[c] + f" {UNPAIRED}" * (c in unpaired) for c in columns)
             + " |", "|---|" + "---|" * len(columns)]
    for T in sorted({r["T"] for r in records}):
        row = []
        for c in columns:
            runs = sorted(cells.get((T, c), []), key=lambda r: r["seed"])
            row.append(f"{spread([r['test_errors'] for r in runs])}, seeds "
                       f"{','.join(str(r['seed']) for r in runs)}"
                       f"{marks(f'T={T:g}, {label[c]}', runs, strict).replace(UNPAIRED, '').rstrip()}"
                       if runs else "")
        lines.append(f"| {T:g} | " + " | ".join(row) + " |")
    recipes = sorted({(label[column(r)], r["params"]["name"], r["epochs"], learning_rate(r),
                       r["alpha"], columns.index(column(r))) for r in records},
                     key=lambda x: x[-1])
    lines.append("")
    lines.append("Recipe: " + "; ".join(f"{name[len('distilled '):]}: {params}, {epochs} epochs, "
                                        f"{f'lr {lr:g}, ' if lr else ''}alpha {alpha:g}"
                                        for name, params, epochs, lr, alpha, _ in recipes) +
                 f"; wall-clock per run {min(r['wall_s'] for r in records) / 60:.1f}-"
                 f"{max(r['wall_s'] for r in records) / 60:.1f} min on "
                 f"{'; '.join(sorted({r.get('hardware', r['device']) for r in records}))}.")
    return "\n".join(lines)


def models_table(folder):
    """One row per shipped checkpoint: what it is and the test errors its JSON records."""
    lines = ["| checkpoint | dataset | net | test errors | seed | epochs | notes |",
             "|---|---|---|---|---|---|---|"]
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
            notes.append(f"hint{hint_version(r)} {'→'.join(r['hint_layers'])} x{r['hint_weight']:g}")
        if r.get("jitter"):
            notes.append(f"jitter {r['jitter']}px")
        if r["model"] == "student":
            notes.append(f"teacher: {teacher_of(r)}")
        lines.append(f"| `{path}` | {r.get('dataset', 'mnist')} | {r['model']} {r['architecture']} | "
                     f"{r['test_errors']} | "
                     f"{r['seed']} | {r['epochs']} | {'; '.join(notes)} |")
    return "\n".join(lines)


STUDY_FIELDS = ["T", "alpha", "distill_lr", "distill_epochs", "optimizer", "nesterov", "ema",
                "distill_batch_size", "lr_schedule", "lr_decay", "standardize", "init_std",
                "distill_warmup_steps", "teacher_dropout"]


# the recipe the study started from: LocalParams as it was then, student lr 0.05, batch 100, T 20
STUDY_BASE = {**tp.as_dict(tp.LocalParams()), "T": 20.0, "distill_lr": 0.05,
              "distill_batch_size": 100}


# the teacher study's arms differ from the recipe it started from (LocalParams' teacher at 300
# epochs) in these fields
TEACHER_STUDY_FIELDS = ["teacher_epochs", "lr", "lr_schedule", "optimizer", "batch_size", "ema",
                        "max_norm", "dropout_input", "dropout_hidden", "jitter", "momentum"]
TEACHER_STUDY_BASE = {**tp.as_dict(tp.LocalParams()), "teacher_epochs": 300}
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
    changed = [f"{k} {params[k]:g}" if isinstance(params[k], float) else f"{k} {params[k]}"
               for k in fields if k in params and params[k] != base.get(k)]
    if r["model"] == "student" and r.get("jitter"):
        changed.append(f"jitter {r['jitter']}")
    if r["model"] == "student" and logit_method(r):
        changed.append(f"by {logit_method(r)}")
    other, teacher = teacher_group(r)
    if other:
        changed.append(f"teacher {teacher}")
    if r["architecture"] != {"teacher": "784-1200-1200-10"}.get(r["model"], "784-800-800-10"):
        changed.insert(0, r["architecture"])
    return ", ".join(changed) or "none: the starting recipe"


def cnn_records(paths):
    records = load_records(paths)
    if not records:
        fail(f"no results JSON files in {' '.join(paths)}")
    return records


def study_records(folder):
    records = [r for r in load_records([folder]) if r.get("holdout")]
    if not records:
        fail(f"no results with held-out images (--holdout) in {folder!r}")
    return with_raw_weights(records)


def with_raw_weights(records):
    """records, plus for each --ema run the arm without averaging: its raw net's errors are
    those of the same run without --ema (averaging never touches training), so one run
    measures both. Skipped where that run exists on its own (the same seed and arm)."""
    raw = []
    for r in records:
        if r["params"].get("ema") and "raw_val_errors" in r:
            plain = {**r, "params": {**r["params"], "ema": 0.0}, "val_errors": r["raw_val_errors"],
                     "test_errors": r["raw_test_errors"]}
            raw.append(plain)
    def run_of(r):  # what decides a run's numbers
        return (sorted(r["params"].items()), r["seed"], r["model"], r["architecture"],
                r.get("teacher"), r.get("jitter"), r.get("holdout"))
    seen = [run_of(r) for r in records]
    return records + [p for p in raw if run_of(p) not in seen]


def study_table(records, arm_of=study_arm):
    """A recipe study: one row per arm (seeds pooled), best validation errors first, per teacher.
    Chosen by val_errors (held-out training images); test errors are shown, never used."""
    arms = {}
    for r in records:
        arms.setdefault(arm_of(r), []).append(r)
    lines = ["| arm (what differs from the starting recipe) | val errors (of 10,000 held out) | "
             "test errors | seeds | epochs | wall-clock per run |", "|---|---|---|---|---|---|"]
    # validation errors compare only under one teacher: the shipped one's arms first
    ranked = sorted(arms.items(), key=lambda kv: (teacher_group(kv[1][0]),
                                                  statistics.mean(r["val_errors"] for r in kv[1])))
    for arm, runs in ranked:
        runs.sort(key=lambda r: r["seed"])
        minutes = statistics.mean(r["wall_s"] for r in runs) / 60
        lines.append(f"| {arm} | {spread([r['val_errors'] for r in runs])} | "
                     f"{spread([r['test_errors'] for r in runs])} | "
                     f"{', '.join(str(r['seed']) for r in runs)} | {runs[0]['epochs']} | "
                     f"{minutes:.1f} min |")
    return "\n".join(lines)


def teacher_arm(r):
    """A teacher-study arm: what differs from the recipe the teacher study started from."""
    return study_arm(r, TEACHER_STUDY_FIELDS, TEACHER_STUDY_BASE)


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
    """How a net of the CNN / hint experiments learned, in words."""
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


def teacher_of(r):
    """A student's teacher: its architecture, or for runs that did not record it, its file."""
    if r["model"] != "student":
        return ""
    return r.get("teacher_architecture") or os.path.basename(r.get("teacher", ""))


def cnn_key(r):
    """Everything that defines a run of these experiments except its seed."""
    config = r.get("config", {})
    teacher = ", ".join(filter(None, [r.get("teacher_architecture") if "teacher_run" in r
                                      else teacher_of(r), teacher_note(r)]))  # not per seed
    return (r.get("dataset", "mnist"), r["model"], r["architecture"], method(r),
            teacher, r["epochs"], learning_rate(r),
            (teacher_key(r), r.get("alpha"), r.get("subset", 1.0), r.get("holdout", 0),
             tuple(r.get("omit", [])), tuple(r.get("only", [])), r.get("jitter", 0),
             r.get("flip", False), config.get("dropout_input"), config.get("dropout_hidden"),
             config.get("max_norm"), batch_size(r)))


def cnn_table(records, strict=False):
    """The CNN-teacher and hint experiments: one row per (dataset, net, method) over seeds; a
    student's gain is its test errors minus those of the same net on hard labels, per seed."""
    groups = {}
    for r in records:
        groups.setdefault(cnn_key(r), []).append(r)
    for key, runs in groups.items():
        seeds = [r["seed"] for r in runs]
        if len(set(seeds)) < len(seeds):
            fail(f"two runs of one row ({key[0]}, {key[1]} {key[2]}, {key[3]}) share a seed: "
                 "remove the duplicate results file")
    hard = {(r.get("dataset", "mnist"), r["architecture"], r["seed"], r["epochs"],
             r.get("subset", 1.0)): r["test_errors"] for r in records if r["model"] == "small"}
    lines = ["| dataset | net | method | teacher | test errors | error % | vs hard labels, per "
             "seed | seeds | epochs, lr |", "|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(groups, key=lambda k: (k[0], ORDER[k[1]], -len(k[2]), k[2],
                                             groups[k][0].get("T") or 0, k[3])):
        data, model, arch, how, teacher, epochs, lr, other = key
        runs = sorted(groups[key], key=lambda r: r["seed"])
        errors = [r["test_errors"] for r in runs]
        twin = {r["seed"]: (data, arch, r["seed"], epochs, r.get("subset", 1.0)) for r in runs}
        gains = [r["test_errors"] - hard[twin[r["seed"]]] for r in runs
                 if model == "student" and twin[r["seed"]] in hard]
        gain = f"{spread(gains)}" if gains and len(gains) == len(runs) else ""
        teacher += marks(f"{data}, {model} {arch}, {how}, {teacher}", runs, strict)
        lines.append(f"| {data} | {model} {arch} | {how} | {teacher} | {spread(errors)} | "
                     f"{100 * statistics.mean(errors) / runs[0]['test_count']:.2f} | {gain} | "
                     f"{len(runs)} ({', '.join(str(r['seed']) for r in runs)}) | {epochs}, lr {lr:g}"
                     f"{batch_note(other[-1])} |")
    return "\n".join(lines + [""] + cnn_verdicts(groups))


def cnn_verdicts(groups):
    """Per (dataset, net trained several ways): which way won, and by how much over the next,
    as a per-seed paired difference (mean ± std), whatever the sign."""
    by_net = {}
    for key, runs in groups.items():
        if key[1] != "teacher":
            way = key[3] + (f", {key[4]}" if "teacher_run" in runs[0] else
                            f", teacher {key[4]}" if key[4] else "") + batch_note(key[-1][-1])
            by_net.setdefault((key[0], key[2]), []).append((way, {r["seed"]: r["test_errors"] for r in runs}))
    lines = []
    for (data, arch), ways in sorted(by_net.items()):
        ways.sort(key=lambda w: statistics.mean(w[1].values()))
        distilled = [w for w in ways if w[0] != "hard labels"]
        for label, pool in (("", ways), ("among the distilled ones, ", distilled)):
            if label and ways[0][0] != "hard labels":
                continue  # the first line already compared the best distilled way
            line = compare(pool, f"{data}, {arch}: {label}")
            lines += [line] if line else []
    return lines


def compare(ways, head):
    """'- HEAD fewest errors with *A* (mean); the next, *B*, makes d ± s more per seed', or None."""
    if len(ways) < 2:
        return None
    (best, a), (second, b) = ways[0], ways[1]
    paired = [b[s] - a[s] for s in sorted(a) if s in b]
    if len(paired) < 2:
        return None
    return (f"- {head}fewest errors with *{best}* ({statistics.mean(a.values()):.1f}); the next, "
            f"*{second}*, makes {statistics.mean(paired):.1f} ± {statistics.stdev(paired):.1f} "
            f"more per seed (seeds {', '.join(str(s) for s in sorted(a) if s in b)}).")


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


def main(argv=None):
    parser = OneLineErrors(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="results JSON files or folders of them")
    parser.add_argument("--models", metavar="DIR", help="also a table of the checkpoints in DIR")
    parser.add_argument("--study", metavar="DIR", help="also the table of the student recipe "
                        "study: the runs in DIR with held-out images")
    parser.add_argument("--teacher-study", metavar="DIR", help="also the table of the teacher "
                        "recipe study: the runs in DIR with held-out images")
    parser.add_argument("--cnn", metavar="PATH", nargs="+", help="also the table of the "
                        "CNN-teacher and hint experiments: the runs in these folders and files")
    parser.add_argument("--plots", metavar="DIR", help="also draw the figures into DIR "
                        "(needs matplotlib, an optional extra)")
    parser.add_argument("--cost", action="store_true", help="also the table of the core-hours "
                        "each table's runs took")
    parser.add_argument("--write", metavar="README", help="replace the tables in this file")
    parser.add_argument("--check", metavar="README", nargs="?", const=True, help="write nothing; "
                        "exit 1 if the tables in README (by default --write's) differ from what "
                        "the results give, 0 if not")
    parser.add_argument("--strict", action="store_true", help="refuse rows of uncommitted or "
                        "unrecorded code and rows whose students all learned from one teacher")
    args = parser.parse_args(argv)
    readme = args.write if args.check is True else args.check
    if args.check and not readme:
        fail("--check needs a README: --check README, or --write README --check")
    records = load_records(args.paths)
    if not records:
        fail(f"no results JSON files in {' '.join(args.paths)}")
    # distillation_no_three.py runs: the as-trained record holds all of its variants
    dark = [r for r in records if r.get("variant") == "as trained"]
    plain = [r for r in records if "experiment" not in r]
    swept = swept_architectures(plain)
    sweeps = [r for r in plain if is_sweep(r, swept)]
    plain = [r for r in plain if not is_sweep(r, swept)]
    strict = args.strict  # refuse marked rows
    blocks = {"results": table(plain, strict) if plain else None,
              "temperature-sweep": sweep_table(sweeps, strict) if sweeps else None,
              "dark-knowledge": dark_knowledge_table(dark, strict) if dark else None,
              "models": models_table(args.models) if args.models else None,
              "student-study": study_table(study_records(args.study)) if args.study else None,
              "teacher-study": study_table(study_records(args.teacher_study), teacher_arm)
              if args.teacher_study else None,
              "cnn": cnn_table(cnn_records(args.cnn), strict) if args.cnn else None}
    blocks["cost"] = None if not args.cost else cost_table({"results": plain, "temperature sweeps": sweeps,
                                 "dark knowledge": dark,
                                 "student study": study_records(args.study) if args.study else [],
                                 "teacher study": study_records(args.teacher_study)
                                 if args.teacher_study else [],
                                 "CNN and hints": cnn_records(args.cnn) if args.cnn else []})
    blocks = {name: with_notes(text) for name, text in blocks.items() if text is not None}
    if args.check:
        stale = refresh(readme, blocks, write=False)
        if stale:
            print(f"{readme}: the generated sections {', '.join(stale)} differ from the results "
                  "files (rerun with --write)", file=sys.stderr)
            sys.exit(1)
        print(f"{readme}: all {len(blocks)} generated sections match the results files")
        return
    if args.write:
        refresh(args.write, blocks)
    for text in blocks.values():
        print(text + "\n")
    if args.plots:
        draw(args.plots, sweeps, plain)


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
                       and PAPER.get((r["model"], r["architecture"], r.get("T"))) is not None
                       and paper_setting(row_key(r)) and batch_size(r) is None),
                      key=lambda r: -r["epochs"])  # the paper's row at the recipe's defaults
        if runs:
            curves.append((f"{label} ({runs[0]['test_errors']} at epoch {runs[0]['epochs']})", runs[0]))
    if curves:
        print("wrote", plots.learning_curves(curves, os.path.join(folder, "learning_curves.png")))


if __name__ == "__main__":
    main()
