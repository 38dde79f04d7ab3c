"""What a run reports: its results record (the JSON beside each checkpoint), the machine and
code version it ran on, the summary table a script prints at the end, and how it ends when it
fails (`report_errors`: one line and an exit code).
"""
import json
import os
import platform
import shlex
import subprocess
import sys

import torch

import training_params as tp
from errors import CLEANUPS, Diverged, Interrupted, UsageError
from layers import describe, evaluate


def run_record(args, params, role, net, train_count, test_set, history, timing, wall_s, device,
               val_set=None, **extra):
    errors, per_class, _ = evaluate(net, *test_set)
    held_out = {} if val_set is None else {"val_errors": evaluate(net, *val_set)[0],
                                           "val_count": len(val_set[1])}
    last = history[-1] if history else {}
    raw = {k: last[k] for k in ("raw_test_errors", "raw_val_errors") if k in last}  # --ema
    return {"model": role, "dataset": args.dataset, "architecture": describe(net.config()),
            "config": net.config(),
            "test_errors": errors, "per_class_errors": per_class, "test_count": len(test_set[1]),
            "holdout": args.holdout, **held_out, **raw,
            "epochs": len(history), "seed": args.seed, "params": tp.as_dict(params),
            "train_count": int(train_count), "subset": args.subset, "omit": args.omit,
            "only": args.only,
            "samples_per_s": round(timing["samples_per_s"], 1),
            "train_s": round(timing["train_s"], 2),
            "wall_s": round(wall_s + timing.get("wall_s_before_resume", 0.0), 2),
            "device": str(device), "hardware": hardware(device), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "precision": args.precision, "code_version": code_version_at_start(),
            "command": " ".join(sys.argv), **extra,
            "history": history}


def teacher_run(path):
    """What a student's record keeps of its teacher's run (from the JSON beside the
    checkpoint), so tables can check that the student of seed s learned from the teacher of
    seed s, and that one row's teachers share a recipe; None values without that JSON."""
    try:
        with open(os.path.splitext(path)[0] + ".json") as f:
            run = json.load(f)
    except (OSError, ValueError):
        run = {}
    return {"path": path, **{key: run.get(key) for key in
                             ("seed", "epochs", "params", "holdout", "test_errors",
                                                  "code_version")}}


def note_unpaired(teacher_path, seed):
    """One line when the teacher's run is of another seed than the student's."""
    teacher_seed = teacher_run(teacher_path)["seed"]
    if teacher_seed is not None and teacher_seed != seed:
        print(f"note: the teacher is of seed {teacher_seed}, the student of seed {seed}; the "
              "tables pair the student of seed s with the teacher of seed s")


def hardware(device):
    """A short name of the machine the run used, for the results tables."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} cores"


def code_version():
    """The git commit of this code (+ '-dirty' with uncommitted changes), or None outside git."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, text=True,
                                capture_output=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                "*.py"], cwd=here, text=True, capture_output=True,
                               timeout=10).stdout.strip()  # code only: results and docs change
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if commit and dirty else (commit or None)


_started_with = []  # the code version, read once, when the run starts (report_errors)


def code_version_at_start():
    """The code version this process started with: a long run's code is the code it started
    with, whatever is committed while it trains. Read lazily, so importing runs no git."""
    if not _started_with:
        _started_with.append(code_version())
    return _started_with[0]


def __getattr__(name):  # records.CODE_VERSION, as before, without a subprocess at import
    if name == "CODE_VERSION":
        return code_version_at_start()
    raise AttributeError(f"module 'records' has no attribute {name!r}")


def count(n, noun):
    """'1 epoch', '3 epochs'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def format_seconds(s):
    s = int(round(s))
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def print_summary(rows):
    """rows: list of (name, errors or None, test_count, note)."""
    width = max([34] + [len(row[0]) for row in rows])
    print(f"\n{'model':<{width}} {'test errors':>11} {'error %':>8}  note")
    for name, errors, count, note in rows:
        shown = ("-", "-") if errors is None else (errors, f"{100 * errors / count:.2f}")
        print(f"{name:<{width}} {shown[0]:>11} {shown[1]:>8}  {note}")


def report_errors(main):
    """Run main(argv); bad input, divergence and Ctrl-C become one line on stderr, no
    traceback, with their exit codes (errors.py)."""
    def wrapped(argv=None):
        prog = os.path.basename(sys.argv[0]) if argv is None else "script"
        code_version_at_start()  # the run's code is the code it starts with
        try:
            return main(argv)
        except UsageError as e:
            print(f"{prog}: error: {e}", file=sys.stderr)
            sys.exit(2)
        except Diverged as e:
            print(f"{prog}: {e.kind}: {e}", file=sys.stderr)
            sys.exit(3)
        except Interrupted as e:
            words = ["python", *sys.argv] if argv is None else ["python", prog, *argv]
            again = shlex.join(words + ([] if "--resume" in words else ["--resume"]))
            print(f"{prog}: {e}; continue with: {again}", file=sys.stderr)
            sys.exit(130)
        except KeyboardInterrupt:
            print(f"\n{prog}: interrupted; the run in progress was not saved", file=sys.stderr)
            sys.exit(130)
        finally:
            for cleanup in CLEANUPS:
                cleanup()
    return wrapped
