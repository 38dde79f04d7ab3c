"""The command line the scripts share: flags, their checks, the device, the data a run trains
on, the default output names, and how a run ends (bad input: one line on stderr and exit code 2;
divergence: exit 3; Ctrl-C: 130 with the command that resumes). One home for what each script's
`main` does before and after training, so the three scripts read the same way.
"""
import argparse
import math
import os
import shlex
import sys

import torch

import dataset
import training_params as tp

DEFAULT_HIDDEN = {"teacher": [1200, 1200], "small": [800, 800], "student": [800, 800]}
FILE_PREFIX = {"teacher": "cumbersome_model", "small": "small_model", "student": "distilled_model"}


class UsageError(Exception):
    """Bad input: reported as one line on stderr with exit code 2."""


class Diverged(Exception):
    """The run blew up: a non-finite loss, or a finite one that undid the training."""


class Interrupted(Exception):
    """Ctrl-C during training: the state was checkpointed after the current step."""
    def __init__(self, epoch, step, path):  # numbered as the progress lines and a resume are
        super().__init__(f"interrupted in epoch {epoch} after step {step}; the training state "
                         f"is saved in {path}")


def report_errors(main):
    """Run main(argv); bad input and divergence become one line on stderr, no traceback."""
    def wrapped(argv=None):
        prog = os.path.basename(sys.argv[0]) if argv is None else "script"
        try:
            return main(argv)
        except UsageError as e:
            print(f"{prog}: error: {e}", file=sys.stderr)
            sys.exit(2)
        except Diverged as e:
            print(f"{prog}: diverged: {e}", file=sys.stderr)
            sys.exit(3)
        except Interrupted as e:
            words = ["python", *sys.argv] if argv is None else ["python", prog, *argv]
            again = shlex.join(words + ([] if "--resume" in words else ["--resume"]))
            print(f"{prog}: {e}; continue with: {again}", file=sys.stderr)
            sys.exit(130)
        except KeyboardInterrupt:
            print(f"\n{prog}: interrupted; the run in progress was not saved", file=sys.stderr)
            sys.exit(130)
    return wrapped


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage dump
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def make_parser(doc, students=True):
    """The flags every script shares, in groups after the script's own (which it adds to the
    parser itself, so they are listed first in --help); `students`: the scripts train one, so
    the student-only recipe fields get flags too."""
    p = Parser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    local = tp.LocalParams()
    run = p.add_argument_group("run")
    run.add_argument("--data-dir", default="data",
                     help="MNIST root, downloaded there if absent (default: %(default)s)")
    run.add_argument("--epochs", type=int,
                     help=f"epochs of this run (default: the recipe's; LocalParams: teacher "
                          f"{local.teacher_epochs}, small net {local.epochs}, student "
                          f"{local.distill_epochs})")
    run.add_argument("--lr", type=float,
                     help=f"peak learning rate of this run (default: the recipe's; LocalParams: "
                          f"{local.lr:g}, student {local.distill_lr:g})")
    run.add_argument("--seed", type=int, default=1,
                     help="seeds init, shuffling, dropout and jitter (default: %(default)s)")
    run.add_argument("--hidden", type=int, nargs="+", metavar="W",
                     help="hidden widths; one value W means two layers of W (default: 1200 for "
                          "the teacher, 800 otherwise)")
    run.add_argument("--out", help="checkpoint path OUT.pt; results go to OUT.json (default: "
                                   "runs/NAME_sSEED.pt, named after the run)")
    run.add_argument("--params", choices=sorted(tp.PARAMS), default="local",
                     help="recipe: 'local' = LocalParams, the CPU recipe; 'paper' = "
                          "PaperParams, the 2012 3000-epoch recipe (default: %(default)s)")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    run.add_argument("--dry-run", action="store_true",
                     help="one epoch of 10 batches, nothing written: a quick check")
    data = p.add_argument_group("training data")
    data.add_argument("--holdout", type=int, default=0, metavar="N",
                      help="hold N training images out of training (the same N for every run "
                           "and seed) and report their errors as val_errors: for choosing "
                           "recipes without the test set (default: 0, train on all)")
    data.add_argument("--subset", type=float, default=1.0, metavar="FRACTION",
                      help="train on a seeded random fraction of the training images")
    classes = data.add_mutually_exclusive_group()
    classes.add_argument("--omit", type=int, nargs="+", default=[], metavar="C",
                         help="drop these classes from the training set")
    classes.add_argument("--only", type=int, nargs="+", default=[], metavar="C",
                         help="keep only these classes in the training set")
    saving = p.add_argument_group("interruption and resume")
    saving.add_argument("--resume", action="store_true",
                        help="continue the run from its OUT.resume.pt (same command otherwise)")
    saving.add_argument("--checkpoint-every", type=int, default=5, metavar="N",
                        help="save the training state to OUT.resume.pt every N epochs and on "
                             "Ctrl-C (0: only on Ctrl-C; default %(default)s)")
    saving.add_argument("--keep-resume", action="store_true",
                        help="keep OUT.resume.pt after the run finishes (default: removed)")
    tp.add_param_flags(p, skip=() if students else tp.STUDENT_ONLY)
    return p


def check_common(args, params):
    problem = tp.check_params(params)
    if problem:
        raise UsageError(problem)
    if not 0 <= args.seed < 2 ** 32:
        raise UsageError(f"--seed must be in [0, 2**32), got {args.seed}")
    if args.checkpoint_every < 0:
        raise UsageError(f"--checkpoint-every must be >= 0, got {args.checkpoint_every}")
    if args.resume and args.dry_run:
        raise UsageError("--resume and --dry-run do not mix: a dry run saves no state")
    if args.out is not None and not args.out.endswith(".pt"):
        raise UsageError(f"--out must end in .pt, got {args.out!r}")
    if args.hidden is not None and min(args.hidden) < 1:
        raise UsageError(f"--hidden widths must be >= 1, got {args.hidden}")
    check_holdout(args.holdout)
    if not (math.isfinite(args.subset) and 0 < args.subset <= 1):
        raise UsageError(f"--subset must be a fraction in (0, 1], got {args.subset}")
    bad = [c for c in args.omit + args.only if not 0 <= c <= 9]
    if bad:
        raise UsageError(f"unknown class {bad[0]}: MNIST classes are 0-9")
    if len(set(args.omit)) == 10:
        raise UsageError("--omit removes all ten classes: nothing left to train on")


def check_holdout(n):
    if not 0 <= n < 60000:
        raise UsageError(f"--holdout must be in [0, 60000), got {n}")


def resolve_device(name):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown --device {name!r}; use auto, cpu or cuda") from None
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"unsupported --device {name!r}; use auto, cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but no CUDA GPU is available; use --device cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UsageError(f"--device {name}: there are only {torch.cuda.device_count()} GPUs")
    return device


def hidden_widths(args, role):
    if args.hidden is None:
        return DEFAULT_HIDDEN[role]
    return args.hidden * 2 if len(args.hidden) == 1 else args.hidden


def regularizer(args, params, role, name):
    """Dropout, max-norm or jitter of a run: the teacher takes the recipe's value, the other
    nets (no regularization in the paper) only what was given on the command line."""
    given = getattr(args, name)
    if given is not None:
        return given
    return getattr(params, name) if role == "teacher" else type(getattr(params, name))(0)


def net_config(args, params, role):
    return {"hidden": hidden_widths(args, role),
            **{name: regularizer(args, params, role, name)
               for name in ("dropout_input", "dropout_hidden", "max_norm")},
            "init_std": params.init_std, "standardize": params.standardize}


def run_length(args, epochs):
    """(epochs, max_steps per epoch) of a run: a --dry-run is one epoch of 10 steps."""
    return (1, 10) if args.dry_run else (epochs, None)


def load_data(args, device, all_classes=False):
    """(train, val, test), each (images, labels): val is the --holdout split of the training
    images (None without one), taken before the class filter (`kept_classes`, unless
    `all_classes`) and then the --subset are applied to the rest."""
    try:
        train = dataset.load_mnist(args.data_dir, train=True, device=device)
        test = dataset.load_mnist(args.data_dir, train=False, device=device)
    except dataset.DataError as e:
        raise UsageError(str(e)) from None
    if args.holdout >= len(train[1]):
        raise UsageError(f"--holdout {args.holdout} leaves no training image "
                         f"(there are {len(train[1])})")
    train, val = dataset.holdout_split(*train, args.holdout) if args.holdout else (train, None)
    if not all_classes:
        train = kept_classes(args, train)
    if args.subset < 1:
        train = dataset.random_subset(*train, args.subset, dataset.data_seed(args.seed))
    return train, val, test


def kept_classes(args, train):
    """The training images of the classes --omit / --only keep; bad input if none is left."""
    kept = dataset.filter_classes(*train, omit=args.omit, only=args.only)
    if len(kept[1]) == 0:
        raise UsageError(f"no training images left after --omit {args.omit} / --only {args.only}")
    return kept


def default_out(args, role, config, suffix="", tag=""):
    """runs/PREFIX[_TAG]_WIDTH[SUFFIX][_subF][_hN]_sSEED.pt, e.g. runs/distilled_model_wo3_800_20_s1.pt:
    the default names of runs that differ in role, width, T, classes, subset, holdout or seed
    never collide."""
    name = width_name(config)
    prefix = f"{FILE_PREFIX[role]}_{tag}" if tag else FILE_PREFIX[role]
    subset = f"_sub{args.subset:g}" if args.subset < 1 else ""
    holdout = f"_h{args.holdout}" if args.holdout else ""
    return os.path.join("runs", f"{prefix}_{name}{suffix}{subset}{holdout}_s{args.seed}.pt")


def width_name(config):
    """'800' for two layers of 800, '1200x600' for unequal ones: the width part of file names."""
    widths = config["hidden"]
    return str(widths[0]) if len(set(widths)) == 1 else "x".join(map(str, widths))


def check_writable(out):
    """Fail before training, not after it, if OUT.pt or OUT.json cannot be written: the folder is
    created and a probe file written and removed in it."""
    for path in (out, json_path_of(out)):
        if os.path.isdir(path):
            raise UsageError(f"output {path!r} is a folder; pick another --out")
    folder = os.path.dirname(os.path.abspath(out))
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, f".write-probe-{os.getpid()}")
        with open(probe, "wb"):
            pass
        os.remove(probe)
    except OSError as e:
        raise UsageError(f"cannot write to output folder {folder!r} ({e.strerror}); "
                         "pick another --out") from None


def json_path_of(out):
    return os.path.splitext(out)[0] + ".json"
