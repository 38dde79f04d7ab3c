"""Every run the README's results tables need, for seeds 1-3, in one command; then the tables.

    python tools/reproduce.py                      # run what is missing on all cores, then the tables
    python tools/reproduce.py --dry-run            # what would run, and its core-hours
    python tools/reproduce.py --print | xargs ...  # one command per line, to spread on other machines
    python tools/reproduce.py --only distilled     # one table row (its teacher runs too)
    python tools/reproduce.py --quick              # the whole plan at toy size, in OUT-DIR/quick

The plan is seed-paired: the student of seed S learns from the teacher of seed S. A run whose
results JSON exists is skipped, an interrupted one is resumed (--resume), the rest run in worker
processes of one thread each, a student after its teacher; each run's output goes to a .log
beside its results. Rerunning the same command after a crash or Ctrl-C carries on.
"""
import argparse
import collections
import functools
import glob
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository: scripts, README
sys.path.insert(1, HERE)
import training_params as tp  # the recipes' default epochs; no torch, so listing stays instant

Row = collections.namedtuple("Row", "name command out results needs minutes")

TEMPERATURES = "1 2 2.5 3 4 6 8 12 20"
# the consistent teacher's epochs: 300 for now; held-out errors (not the test set) will choose it
CONSISTENT_EPOCHS = 300
FASHION = "--dataset fashion-mnist"
NARROW = "--arch cnn --channels 8 16 --kernel 3 --batch-norm 1 --hidden 64"  # the CNN student
FASHION_STUDENT = f"--batch-size 100 --T 4 --epochs 15 --lr 0.03 --distill-warmup-steps 0 {FASHION}"


def sweep(out, temperatures):
    """The results a sweep writes: one JSON per T, OUT_T{T} (distillation.py's out_path)."""
    return [f"{out}_T{float(T):g}" for T in temperatures.split()]


# THE PLAN: one row per table row. out: the --out name under --out-dir ({S}: the seed); results:
# the JSON names it writes (None: just out); needs: the row whose net is its --teacher; minutes:
# a rough wall-clock on one core, for the ETA before any run of the row has finished.
PLAN = [
    Row("teacher", "train.py --model teacher", "teacher_s{S}", None, None, 180),
    Row("small", "train.py --model small", "small_s{S}", None, None, 4),
    Row("small3", "train.py --model small --subset 0.03 --epochs 300", "small_sub0.03_s{S}",
        None, None, 3),
    Row("distilled", "distillation.py --T 20", "distilled_T20_s{S}", None, "teacher", 20),
    Row("soft", "distillation.py --T 20 --alpha 1", "distilled_T20_alpha1_s{S}", None,
        "teacher", 16),
    Row("distilled3", "distillation.py --T 20 --subset 0.03 --epochs 300",
        "distilled_T20_sub0.03_s{S}", None, "teacher", 5),
    Row("consistent", f"distillation.py --T 20 --jitter 2 --epochs {CONSISTENT_EPOCHS}",
        "distilled_T20_jitter2_s{S}", None, "teacher", 72),
    Row("no3", "distillation_no_three.py", "no3_s{S}", ["no3_s{S}", "no3_s{S}_baseline"],
        "teacher", 25),
    Row("only78", "distillation_no_three.py --only 7 8", "only78_s{S}",
        ["only78_s{S}", "only78_s{S}_baseline"], "teacher", 6),
    Row("sweep300", f"distillation.py --hidden 300 --T {TEMPERATURES}", "sweep300_s{S}",
        sweep("sweep300_s{S}", TEMPERATURES), "teacher", 45),
    Row("sweep30", f"distillation.py --hidden 30 --T {TEMPERATURES}", "sweep30_s{S}",
        sweep("sweep30_s{S}", TEMPERATURES), "teacher", 10),
    # the CNN table (README: "Beyond the paper"), in a folder of its own: tables.py --cnn
    Row("fashion-teacher", "train.py --model teacher --arch cnn --channels 16 32 --kernel 3 "
        f"--batch-norm 1 --epochs 15 --jitter 0 {FASHION}", "cnn/fashion_teacher_s{S}", None,
        None, 9),
    Row("fashion-small-cnn", f"train.py --model small {NARROW} --epochs 15 {FASHION}",
        "cnn/fashion_small_cnn_s{S}", None, None, 4),
    Row("fashion-distilled-cnn", f"distillation.py {NARROW} {FASHION_STUDENT}",
        "cnn/fashion_distilled_cnn_s{S}", None, "fashion-teacher", 5),
    Row("fashion-hint", f"distillation.py {NARROW} {FASHION_STUDENT} --hint-weight 1",
        "cnn/fashion_hint_s{S}", None, "fashion-teacher", 6),
    Row("fashion-hint2", f"distillation.py {NARROW} {FASHION_STUDENT} --hint-weight 1 "
        "--two-stage --hint-epochs 3", "cnn/fashion_hint2_s{S}", None, "fashion-teacher", 7),
    Row("fashion-small-mlp", f"train.py --model small --hidden 128 --depth 1 --epochs 15 {FASHION}",
        "cnn/fashion_small_mlp_s{S}", None, None, 2),
    Row("fashion-distilled-mlp", f"distillation.py --hidden 128 --depth 1 {FASHION_STUDENT}",
        "cnn/fashion_distilled_mlp_s{S}", None, "fashion-teacher", 3),
    Row("cnn-teacher", "train.py --model teacher --arch cnn --epochs 10", "cnn/teacher_cnn_s{S}",
        None, None, 15),
    Row("small128", "train.py --model small --hidden 128 --depth 1 --epochs 30",
        "cnn/small128_s{S}", None, None, 2),
    Row("cnn-sweep128", "distillation.py --batch-size 100 --hidden 128 --depth 1 --T 1 2 4 8 20 "
        "--epochs 30", "cnn/sweep128_s{S}", sweep("cnn/sweep128_s{S}", "1 2 4 8 20"),
        "cnn-teacher", 15),
    Row("cnn-distilled800", "distillation.py --batch-size 100 --T 20", "cnn/distilled_T20_s{S}",
        None, "cnn-teacher", 11),
]
ROWS = {row.name: row for row in PLAN}
# --quick: every row for 1 epoch on 10% of the training images (on 1%, students of a 1% teacher
# stay at chance, and the scripts stop a run that learns nothing in its first epoch), or on its
# own subset (small3 stays on 3%: on 10% like small, the two rows would be one experiment, and
# the tables would see each seed twice)
QUICK_EPOCHS, QUICK_SUBSET = 1, 0.1
START_MINUTES = 0.1  # a run's fixed cost (Python, torch, data, test pass): most of a quick one
# one (row, seed): its command, results JSONs, resume states and log, the (row, seed) it needs,
# and its minutes before any run of its row has finished (the row's, scaled to --quick's size).
# File names as checkpoint.json_path_of and checkpoint.resume_path make them (the test checks), written
# out here so that listing the plan imports no torch
Run = collections.namedtuple("Run", "row seed command results resume log needs minutes")


def flag_value(words, name, default=None):
    """The value of the last `name` flag in a command's words (argparse's choice), else default."""
    at = [i for i, word in enumerate(words) if word == name]
    return words[at[-1] + 1] if at else default


def epochs_of(row):
    """The row's epochs: its --epochs, else its script's default for its role (LocalParams)."""
    local, script = tp.LocalParams(), row.command.split()[0]
    default = (local.distill_epochs if script.startswith("distillation")
               else local.teacher_epochs if "--model teacher" in row.command else local.epochs)
    return int(flag_value(row.command.split(), "--epochs", default))


def subset_of(row):
    return float(flag_value(row.command.split(), "--subset", 1))


def quick_subset(row):
    """--quick's share of the training images: the row's own subset if it has one, else 10%."""
    return subset_of(row) if subset_of(row) < 1 else QUICK_SUBSET


def quick_flags(row):
    """Appended to the row's command, after --extra: the last of a flag is the one that counts."""
    return ["--epochs", str(QUICK_EPOCHS)] + ([] if subset_of(row) < 1
                                              else ["--subset", f"{QUICK_SUBSET:g}"])


def quick_minutes(row):
    """The row's minutes scaled to --quick by the work (epochs x training images), plus a run's
    fixed cost, which the plan's full-size minutes already hold."""
    work = QUICK_EPOCHS * quick_subset(row) / (epochs_of(row) * subset_of(row))
    return row.minutes * work + START_MINUTES


def runs_of(rows, seeds, out_dir, data_dir, fashion_dir, extra, scripts=".", quick=False):
    """Every (row, seed) as a Run, in dependency order: rows in PLAN order, then seeds; with
    `quick`, at toy size (quick_flags)."""
    runs = []
    for row in rows:
        for seed in seeds:
            def path(stem):
                return os.path.join(out_dir, stem.format(S=seed))
            words = row.command.split()
            words = ["python", os.path.normpath(os.path.join(scripts, words[0])), *words[1:],
                     "--seed", str(seed)]
            if row.needs:
                words += ["--teacher", path(ROWS[row.needs].out) + ".pt"]
            words += ["--out", path(row.out) + ".pt", "--checkpoint-every", "5"]
            folder = fashion_dir if FASHION in row.command else data_dir
            words += ["--data-dir", folder] if folder else []
            results = [path(stem) for stem in row.results or [row.out]]
            runs.append(Run(row, seed, words + extra + (quick_flags(row) if quick else []),
                            [r + ".json" for r in results], [r + ".resume.pt" for r in results],
                            path(row.out) + ".log", (row.needs, seed) if row.needs else None,
                            quick_minutes(row) if quick else row.minutes))
    return runs


def done(run):
    return all(os.path.exists(path) for path in run.results)


def started(run):
    """Interrupted: a resume state left, or part of a sweep written (a sweep resumed with
    --resume skips its finished temperatures)."""
    return any(map(os.path.exists, run.resume + run.results))


def command_of(run):
    return run.command + (["--resume"] if started(run) else [])


def minutes_of(run, runs):
    """Mean wall-clock of the finished runs of the same row (all their results JSONs), else
    the plan's rough estimate."""
    walls = [sum(map(wall_minutes, other.results)) for other in runs
             if other.row is run.row and done(other)]
    return sum(walls) / len(walls) if walls else run.minutes


@functools.lru_cache(maxsize=None)  # a finished run's JSON does not change: read it once
def wall_minutes(path):
    return read_json(path).get("wall_s", 0) / 60


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def key(run):
    return run.row.name, run.seed


def eta(left, runs, jobs):
    """Rough wall-clock of the runs left, {key: minutes}: their work spread over the workers,
    or the longest teacher-then-student chain among them if that is longer."""
    needs = {key(run): run.needs for run in runs}
    chain = max((m + left.get(needs[k], 0) for k, m in left.items()), default=0)
    minutes = max(sum(left.values()) / jobs, chain)
    return f"{int(minutes // 60)}h{int(minutes % 60):02d}m"


def run_all(runs, jobs):
    """Run what is not done, `jobs` at a time, a student once its teacher succeeded; returns
    {(row name, seed): 'ok' | 'failed' | 'skipped'}."""
    state = {key(r): "ok" for r in runs if done(r)}
    # the longest first: the teachers, on which the most depends, start at once
    waiting = sorted((r for r in runs if not done(r)), key=lambda r: -minutes_of(r, runs))
    running = {}  # process -> (run, start time)
    print(f"{len(runs)} runs: {len(state)} done already, {len(waiting)} to run on {jobs} workers")
    try:
        while waiting or running:
            launch_ready(waiting, running, state, jobs, runs)
            report_finished(waiting, running, state, jobs, runs)
            time.sleep(0.2)
    except KeyboardInterrupt:  # the runs got the Ctrl-C too: let them save their state
        for process in running:
            process.wait()
        raise
    return state


def launch_ready(waiting, running, state, jobs, runs):
    """Start the runs whose teacher succeeded while workers are free; skip those whose
    teacher failed."""
    for run in list(waiting):
        teacher = state.get(run.needs) if run.needs else "ok"
        if teacher in ("failed", "skipped"):
            waiting.remove(run)
            state[key(run)] = "skipped"
            print(f"[{len(state)}/{len(runs)}] skipped {run.row.name} s{run.seed}: its teacher "
                  f"{run.needs[0]} s{run.seed} did not finish", flush=True)
        elif teacher == "ok" and len(running) < jobs:
            waiting.remove(run)
            running[start(run)] = (run, time.time())


def report_finished(waiting, running, state, jobs, runs):
    """One progress line per run that ended: runs done of all, and the ETA of the rest."""
    for process, (run, began) in list(running.items()):
        if process.poll() is None:
            continue
        del running[process]
        ok = process.returncode == 0 and done(run)
        state[key(run)] = "ok" if ok else "failed"
        left = {key(r): minutes_of(r, runs) for r in waiting}
        left.update({key(r): max(0, minutes_of(r, runs) - (time.time() - t) / 60)
                     for r, t in running.values()})
        how = "done" if ok else f"FAILED (exit code {process.returncode}, log {run.log})"
        if process.returncode == 130:  # Ctrl-C: the run saved its state
            how = f"interrupted (rerun to resume it; log {run.log})"
        print(f"[{len(state)}/{len(runs)}] {how}: {run.row.name} s{run.seed} in "
              f"{(time.time() - began) / 60:.1f} min | ETA {eta(left, runs, jobs)}", flush=True)


def start(run):
    """The run in a process of its own, one thread, output to its log (appended: a resumed
    run keeps the log of its first part)."""
    os.makedirs(os.path.dirname(run.log) or ".", exist_ok=True)
    with open(run.log, "a") as log:
        words = command_of(run)
        log.write(f"$ {shlex.join(words)}\n")
        log.flush()
        return subprocess.Popen([sys.executable, *words[1:]], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})


def tables_command(out_dir, readme):
    """tables.py over the out-dir: the main tables from its JSONs, the CNN table from cnn/ plus
    the MLP-teacher's 800-800 students; into `readme` and the docs/ beside it if given."""
    words = ["python", os.path.relpath(os.path.join(HERE, "tools", "tables.py")), out_dir]
    if glob.glob(os.path.join(out_dir, "cnn", "*.json")):
        from_mlp_teacher = ROWS["distilled"].out.format(S="[0-9]*") + ".json"
        words += ["--cnn", os.path.join(out_dir, "cnn"),
                  *sorted(glob.glob(os.path.join(out_dir, from_mlp_teacher)))]
    if readme:  # each table's block lives in the README or one of the docs/ pages beside it
        docs = os.path.join(os.path.dirname(readme), "docs")
        words += ["--write", readme, *sorted(glob.glob(os.path.join(docs, "*.md")))]
        if importlib.util.find_spec("matplotlib"):  # tables.py's figures need it (an extra)
            words += ["--plots", docs]
    return words


def readme_block():
    """The reproduce block of docs/REPRODUCE.md: the plan's commands for seed S, as --print
    lists them."""
    runs = runs_of(PLAN, ["S"], "runs/reproduce", None, None, [])
    return "\n".join(["```bash"] + [f"{shlex.join(r.command)}  # {r.row.name}" for r in runs]
                     + ["```"])


def write_block(path, text, name="reproduce"):
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    with open(path) as f:
        content = f.read()
    if begin not in content or end not in content:
        fail(f"{path} has no {begin} ... {end} block to replace")
    head, rest = content.split(begin, 1)
    with open(path + ".tmp", "w") as f:  # renamed over the file: never a half-written README
        f.write(f"{head}{begin}\n{text}\n{end}{rest.split(end, 1)[1]}")
    os.replace(path + ".tmp", path)


def fail(message):
    """Bad input: one line on stderr, exit code 2, nothing written."""
    print(f"reproduce.py: error: {message}", file=sys.stderr)
    sys.exit(2)


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage dump
        fail(f"{message} (see --help)")


def positive(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def seed(text):
    if not text.isdigit() or int(text) >= 2 ** 32:
        raise argparse.ArgumentTypeError(f"a seed is a whole number in [0, 2**32), got {text!r}")
    return int(text)


def parse_args(argv):
    p = Parser(description=__doc__, allow_abbrev=False,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", metavar="ROW",
                   help=f"only these rows, and the rows they need: {', '.join(ROWS)}")
    p.add_argument("--seeds", type=seed, nargs="+", default=[1, 2, 3],
                   help="seeds to run (default: 1 2 3)")
    p.add_argument("--jobs", type=positive, default=os.cpu_count() or 1,
                   help="runs at a time, one thread each (default: the cores, %(default)s)")
    p.add_argument("--out-dir", default=os.path.join("runs", "reproduce"),
                   help="where runs write results, checkpoints and logs; --quick's go to its "
                        "quick/ subfolder (default: %(default)s)")
    p.add_argument("--data-dir", help="datasets' root passed to every run (default: the "
                   "scripts' own, data/, downloaded there if absent)")
    p.add_argument("--fashion-data-dir", metavar="DIR", help="root holding FashionMNIST/, for "
                   "the Fashion-MNIST runs (default: --data-dir)")
    p.add_argument("--extra", default="", metavar="ARGS",
                   help="flags appended to every run, as one string after '=': --extra='--device "
                        "cuda' (default: none)")
    p.add_argument("--quick", action="store_true",
                   help=f"a tiny check of the whole pipeline, in OUT-DIR/quick (never counted as "
                        f"runs of the real plan): each row for {QUICK_EPOCHS} epoch on "
                        f"{QUICK_SUBSET:.0%}% of the images (or its own --subset); its "
                        "tables are printed, or written to a --readme other than the repository's")
    p.add_argument("--dry-run", action="store_true",
                   help="list what would run and its core-hours; run nothing")
    p.add_argument("--print", action="store_true",
                   help="print what would run, one shell command per line in dependency order "
                        "(teachers first); run nothing")
    p.add_argument("--no-tables", action="store_true", help="skip regenerating the tables")
    p.add_argument("--readme", metavar="FILE", help="the README whose tables (and figures, in "
                   "docs/ beside it) tables.py rewrites at the end (default: README.md for the "
                   "whole plan; only printed with --only, --quick or --extra)")
    p.add_argument("--write", metavar="FILE",
                   help="fill FILE's reproduce block with the plan's commands (the repository's "
                        "is in docs/REPRODUCE.md); run nothing")
    args = p.parse_args(argv)
    unknown = [name for name in args.only or [] if name not in ROWS]
    if unknown:
        fail(f"unknown --only row {unknown[0]!r}; the rows: {', '.join(ROWS)}")
    for flag, folder in (("--data-dir", args.data_dir),
                         ("--fashion-data-dir", args.fashion_data_dir)):
        if folder is not None and not os.path.isdir(folder):
            fail(f"{flag} {folder!r} is not a folder")
    for flag, readme in (("--write", args.write), ("--readme", args.readme)):
        if readme is not None and not os.path.isfile(readme):  # found now, not after the runs
            fail(f"{flag} {readme!r} is not a file")
    try:
        args.extra = shlex.split(args.extra)
    except ValueError as e:
        fail(f"--extra {args.extra!r}: {e}")
    readme = os.path.join(HERE, "README.md")
    if args.quick and args.readme and os.path.realpath(args.readme) == os.path.realpath(readme):
        fail(f"--quick makes toy tables: not for {args.readme!r}; pass a copy or no --readme")
    if args.quick:  # a folder of its own: toy runs never count as done runs of the real plan
        args.out_dir = os.path.join(args.out_dir, "quick")
    if args.readme is None and not (args.only or args.extra or args.quick):
        args.readme = os.path.relpath(readme)
    return args


def selected_rows(only):
    """The rows asked for and the rows whose nets they learn from, in PLAN order."""
    wanted = set(only or ROWS) | {ROWS[name].needs for name in only or ROWS if ROWS[name].needs}
    return [row for row in PLAN if row.name in wanted]


def main(argv=None):
    args = parse_args(argv)
    if args.write:
        write_block(args.write, readme_block())
        return print(f"wrote the reproduce block of {args.write}")
    runs = runs_of(selected_rows(args.only), list(dict.fromkeys(args.seeds)), args.out_dir,
                   args.data_dir, args.fashion_data_dir or args.data_dir, args.extra,
                   os.path.relpath(HERE), args.quick)
    todo = [run for run in runs if not done(run)]
    if args.print:
        return print("\n".join(shlex.join(command_of(run)) for run in todo))
    if args.dry_run:
        for run in todo:
            print(f"{run.row.name:22} s{run.seed}  {minutes_of(run, runs):6.1f} core-min  "
                  f"{'resume' if started(run) else 'start '}  {shlex.join(run.command)}")
        left = {key(run): minutes_of(run, runs) for run in todo}
        return print(f"{len(todo)} of {len(runs)} runs to do, about "
                     f"{sum(left.values()) / 60:.1f} core-hours ({eta(left, runs, args.jobs)} "
                     f"on {args.jobs} workers); nothing run")
    try:
        state = run_all(runs, args.jobs)
    except KeyboardInterrupt:  # the runs got the Ctrl-C too, and saved their state
        print("\ninterrupted: the same command resumes", file=sys.stderr)
        sys.exit(130)
    bad = [run for run in runs if state[key(run)] != "ok"]
    for run in bad:
        print(f"{state[key(run)]}: {run.row.name} s{run.seed} (log: {run.log})")
    if args.no_tables:
        pass
    elif not glob.glob(os.path.join(args.out_dir, "*.json")):  # tables.py needs MNIST results
        print(f"tables: skipped, no results JSON in {args.out_dir} yet")
    else:
        words = tables_command(args.out_dir, args.readme)
        print(f"tables: {shlex.join(words)}", flush=True)
        if subprocess.call([sys.executable, *words[1:]]):
            bad.append("tables")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
