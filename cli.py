"""The command line the scripts share: flags, their checks, the device, the data a run trains
on and the default output names. One home for what each script's `main` does before training,
so the three scripts read the same way (the files a run writes: checkpoint.py; how it ends:
records.report_errors).
"""
import argparse
import hashlib
import math
import os
import sys

import torch

import dataset
import layers
import training_params as tp
from errors import UsageError

DEFAULT_HIDDEN = {"teacher": [1200, 1200], "small": [800, 800], "student": [800, 800]}
DEFAULT_TEACHER = os.path.join("models", "cumbersome_model_1200.pt")
CNN_DEFAULTS = {"channels": [32], "kernel": 5, "convs": 1, "batch_norm": False, "hidden": [128]}
FILE_PREFIX = {"teacher": "cumbersome_model", "small": "small_model", "student": "distilled_model"}


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):  # no prefixes: --epoch is a typo, not --epochs
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})

    def error(self, message):  # one line instead of argparse's usage dump
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


VIEW_CACHE_MB = 1024  # the most memory the consistent teacher's cached views may take


def make_parser(doc, students=True):
    """The flags every script shares, in groups after the script's own (which it adds to the
    parser itself, so they are listed first in --help); `students`: the scripts train one, so
    the student-only recipe fields get flags too."""
    p = Parser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    local = tp.LocalParams()
    run = p.add_argument_group("run")
    run.add_argument("--dataset", choices=list(dataset.DATASETS), default="mnist",
                     help="the images to train and test on (default: %(default)s)")
    run.add_argument("--data-dir", default="data",
                     help="datasets' root, downloaded there if absent (default: %(default)s)")
    run.add_argument("--epochs", type=int,
                     help=f"epochs of this run (default: the recipe's; LocalParams: teacher "
                          f"{local.teacher_epochs}, small net {local.epochs}, student "
                          f"{local.distill_epochs})")
    run.add_argument("--lr", type=float,
                     help=f"peak learning rate of this run (default: the recipe's; LocalParams: "
                          f"{local.lr:g}, student {local.distill_lr:g})")
    run.add_argument("--batch-size", type=int, metavar="N",
                     help=f"minibatch size of this run (default: the recipe's; LocalParams: "
                          f"{local.batch_size}, student {local.distill_batch_size})")
    run.add_argument("--seed", type=int, default=1,
                     help="seeds init, shuffling, dropout and jitter (default: %(default)s)")
    run.add_argument("--hidden", type=int, nargs="+", metavar="W",
                     help="hidden widths; for an MLP one value W means two layers of W "
                          "(default: 1200 for the teacher, 800 otherwise; a CNN's head: 128)")
    run.add_argument("--out", help="checkpoint path OUT.pt; results go to OUT.json (default: "
                                   "runs/NAME_sSEED.pt, named after the run)")
    run.add_argument("--params", choices=sorted(tp.PARAMS), default="local",
                     help="recipe: 'local' = LocalParams, the CPU recipe; 'paper' = "
                          "PaperParams, the 2012 3000-epoch recipe (default: %(default)s)")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    run.add_argument("--precision", choices=list(layers.PRECISIONS), default="fp32",
                     help="bf16: forward passes autocast to bfloat16 (CNNs channels-last), for "
                          "CUDA and CPUs with native bf16 (AMX or AVX512-BF16), where it is "
                          "faster; it runs anywhere, but slowly on other CPUs (default: "
                          "%(default)s)")
    if students:
        run.add_argument("--view-cache-mb", type=float, default=VIEW_CACHE_MB, metavar="MB",
                         help="a jittered transfer set (--jitter N) uses the teacher's logits "
                              "of every shifted (and flipped) view of each image, computed once "
                              "before training: views x images x classes x 4 bytes, 60 MB for "
                              "MNIST at --jitter 2 (25 views); above MB, or when it would cost "
                              "more teacher passes than it saves, the teacher runs live on each "
                              "batch (default: %(default)g)")
    run.add_argument("--dry-run", action="store_true",
                     help="one epoch of 10 batches, nothing written: a quick check")
    arch = p.add_argument_group("architecture (of the net this script trains)")
    arch.add_argument("--arch", choices=["mlp", "cnn"], default="mlp",
                      help="mlp: the paper's nets; cnn: conv stages, max-pool, an MLP head "
                           "(default: %(default)s)")
    arch.add_argument("--depth", type=int, metavar="N",
                      help="MLP: number of hidden layers when --hidden gives one width "
                           "(default: 2; --hidden 128 --depth 1 is 784-128-10)")
    arch.add_argument("--channels", type=int, nargs="+", metavar="C",
                      help="CNN: filters of each conv stage, each followed by a 2x2 max-pool "
                           f"(default: {CNN_DEFAULTS['channels'][0]})")
    arch.add_argument("--kernel", type=int, metavar="K",
                      help=f"CNN: conv kernel size, odd (default: {CNN_DEFAULTS['kernel']})")
    arch.add_argument("--convs", type=int, metavar="N",
                      help=f"CNN: convs per stage (default: {CNN_DEFAULTS['convs']})")
    arch.add_argument("--batch-norm", type=tp.parse_bool, metavar="{0,1}",
                      help="CNN: batch norm after each conv (default: 0)")
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
    saving.add_argument("--overwrite", action="store_true",
                        help="replace a finished run's OUT.pt and OUT.json (default: refuse)")
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
    if not (math.isfinite(getattr(args, "view_cache_mb", 0)) and getattr(args, "view_cache_mb", 0) >= 0):
        raise UsageError(f"--view-cache-mb must be a finite number >= 0, got {args.view_cache_mb}")
    if args.resume and args.dry_run:
        raise UsageError("--resume and --dry-run do not mix: a dry run saves no state")
    if args.out is not None and not args.out.endswith(".pt"):
        raise UsageError(f"--out must end in .pt, got {args.out!r}")
    if args.hidden is not None and min(args.hidden) < 1:
        raise UsageError(f"--hidden widths must be >= 1, got {args.hidden}")
    check_holdout(args.holdout, args.dataset)
    if not (math.isfinite(args.subset) and 0 < args.subset <= 1):
        raise UsageError(f"--subset must be a fraction in (0, 1], got {args.subset}")
    classes = dataset.DATASETS[args.dataset].classes
    bad = [c for c in args.omit + args.only if not 0 <= c < classes]
    if bad:
        raise UsageError(f"unknown class {bad[0]}: {args.dataset} classes are 0-{classes - 1}")
    if len(set(args.omit)) == classes:
        raise UsageError(f"--omit removes all {classes} classes: nothing left to train on")
    check_architecture(args)


def check_architecture(args):
    cnn_only = [flag for flag in ("channels", "kernel", "convs", "batch_norm")
                if getattr(args, flag) is not None]
    if args.depth is not None and (args.depth < 1 or args.arch != "mlp"
                                   or args.hidden is None or len(args.hidden) != 1):
        raise UsageError("--depth N needs an MLP with one --hidden width, N >= 1")
    if args.arch == "mlp" and cnn_only:
        raise UsageError(f"--{cnn_only[0].replace('_', '-')} is a CNN's; add --arch cnn")
    if args.arch != "cnn":
        return
    if args.channels is not None and min(args.channels) < 1:
        raise UsageError(f"--channels must be >= 1, got {args.channels}")
    if args.kernel is not None and (args.kernel < 1 or args.kernel % 2 == 0):
        raise UsageError(f"--kernel must be odd and >= 1, got {args.kernel}")
    if args.convs is not None and args.convs < 1:
        raise UsageError(f"--convs must be >= 1, got {args.convs}")
    side = min(dataset.DATASETS[args.dataset].shape[1:])
    stages = len(args.channels or CNN_DEFAULTS["channels"])
    if side >> stages < 1:
        raise UsageError(f"{stages} conv stages pool a {side}-pixel {args.dataset} image "
                         "to nothing; use fewer --channels")


def check_holdout(n, name="mnist"):
    total = dataset.DATASETS[name].train_count
    if not 0 <= n < total:
        raise UsageError(f"--holdout must be in [0, {total}) for {name}, got {n}")


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


def precision_note(precision, device):
    """One line when bf16 will be slow: a CPU without native bf16 emulates it."""
    if precision == "bf16" and device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        print("--precision bf16: this CPU has no native bf16 (AMX or AVX512-BF16); it runs "
              "correctly but slower than fp32", file=sys.stderr)


def hidden_widths(args, role):
    if args.hidden is None:
        return CNN_DEFAULTS["hidden"] if args.arch == "cnn" else DEFAULT_HIDDEN[role]
    if len(args.hidden) == 1 and args.arch == "mlp":
        return args.hidden * (2 if args.depth is None else args.depth)
    return args.hidden


def regularizer(args, params, role, name):
    """Dropout, max-norm or jitter of a run: the teacher takes the recipe's value, the other
    nets (no regularization in the paper) only what was given on the command line."""
    given = getattr(args, name)
    if given is not None:
        return given
    if role != "teacher" or (args.arch == "cnn" and name in ("dropout_input", "max_norm")):
        return type(getattr(params, name))(0)  # a CNN teacher: dropout in its head only
    if name == "jitter" and args.dataset.startswith("cifar"):  # the recipes' 2 px are for 28x28
        return dataset.DATASETS[args.dataset].jitter  # CIFAR's 4 px crops
    return getattr(params, name)


def augmentation(args, params, role):
    """(max shift in px, flip) of the training images: the dataset's augmentation for the
    teacher (or with --jitter N), flips only where the dataset has them (CIFAR)."""
    shift = regularizer(args, params, role, "jitter")
    return shift, bool(shift) and dataset.DATASETS[args.dataset].flip


def net_config(args, params, role):
    info = dataset.DATASETS[args.dataset]
    config = {"arch": args.arch, "hidden": hidden_widths(args, role),
              **{name: regularizer(args, params, role, name)
                 for name in ("dropout_input", "dropout_hidden", "max_norm")},
              "init_std": params.init_std, "standardize": params.standardize,
              "classes": info.classes, "mean": list(info.mean), "std": list(info.std)}
    if args.arch == "mlp":
        return {**config, "in_features": info.shape[0] * info.shape[1] * info.shape[2]}
    cnn = {k: v if getattr(args, k) is None else getattr(args, k) for k, v in CNN_DEFAULTS.items()
           if k != "hidden"}
    return {**config, **cnn, "in_shape": list(info.shape)}


def run_length(args, epochs):
    """(epochs, max_steps per epoch) of a run: a --dry-run is one epoch of 10 steps."""
    return (1, 10) if args.dry_run else (epochs, None)


def load_data(args, device, all_classes=False):
    """(train, val, test), each (images, labels): val is the --holdout split of the training
    images (None without one), taken before the class filter (`kept_classes`, unless
    `all_classes`) and then the --subset are applied to the rest."""
    try:
        train = dataset.load(args.data_dir, True, device, args.dataset)
        test = dataset.load(args.data_dir, False, device, args.dataset)
    except dataset.DataError as e:
        raise UsageError(str(e)) from None
    train, val = split_holdout(train, args.holdout)
    if not all_classes:
        train = kept_classes(args, train)
    if args.subset < 1:
        train = dataset.random_subset(*train, args.subset, dataset.data_seed(args.seed))
    return train, val, test


def split_holdout(train, n):
    """(kept, held out) of the training images for --holdout n (held out None for n = 0); bad
    input if n leaves no training image."""
    if n >= len(train[1]):
        raise UsageError(f"--holdout {n} leaves no training image (there are {len(train[1])})")
    return dataset.holdout_split(*train, n) if n else (train, None)


def kept_classes(args, train):
    """The training images of the classes --omit / --only keep; bad input if none is left."""
    kept = dataset.filter_classes(*train, omit=args.omit, only=args.only)
    if len(kept[1]) == 0:
        raise UsageError(f"no training images left after --omit {args.omit} / --only {args.only}")
    return kept


def default_out(args, role, config, suffix="", tag=""):
    """runs/PREFIX[_DATASET][_TAG]_WIDTH[SUFFIX][_subF][_hN]_sSEED.pt, e.g.
    runs/distilled_model_wo3_800_20_s1.pt, runs/cumbersome_model_fashion-mnist_cnn32-128_s1.pt:
    the default names of runs that differ in dataset, role, net, T, classes, subset, holdout or
    seed never collide, nor those of runs given other settings (see `settings_tag`)."""
    name = width_name(config)
    prefix = FILE_PREFIX[role] + (f"_{args.dataset}" if args.dataset != "mnist" else "")
    prefix = f"{prefix}_{tag}" if tag else prefix
    subset = f"_sub{args.subset:g}" if args.subset < 1 else ""
    holdout = f"_h{args.holdout}" if args.holdout else ""
    return os.path.join("runs", f"{prefix}_{name}{suffix}{subset}{holdout}{settings_tag(args)}"
                                f"_s{args.seed}.pt")


# flags already in the name, or that do not change what a run computes
NAMED_OR_INERT = {"dataset", "data_dir", "seed", "hidden", "depth", "arch", "channels", "kernel",
                  "convs", "batch_norm", "subset", "holdout", "omit", "only", "T", "hint_weight",
                  "out", "device", "dry_run", "resume", "checkpoint_every", "keep_resume", "overwrite",
                  "baseline", "no_baseline", "model", "params", "view_cache_mb",
                  "method"}  # a method other than kd is in the name: _dkd


SPELLED = {"alpha": "a", "batch_size": "b", "epochs": "e", "jitter": "j", "lr": "lr",
           "params": "", "precision": ""}  # flag -> its letters in a default name: _e3, _lr0.01


def settings_tag(args):
    """'' for a run at its recipe's defaults; else the common flags it was given, spelled
    (_a1_b100_e3_j2_lr0.01_paper_bf16), then '_' + 6 hex digits of a hash of the other flags
    (recipe fields, teacher, hint layers, ...): runs that differ in any of them get different
    default names, and the same command the same name."""
    given = {k: v for k, v in sorted(vars(args).items()) if k not in NAMED_OR_INERT
             and v not in (None, False, []) and not (k == "teacher" and v == DEFAULT_TEACHER)
             and not (k == "precision" and v == "fp32")}
    if args.__dict__.get("params", "local") != "local":
        given["params"] = args.params
    spelled = "".join(f"_{SPELLED[k]}{v:g}" if isinstance(v, (int, float)) else f"_{v}"
                      for k, v in given.items() if k in SPELLED)
    rest = {k: v for k, v in given.items() if k not in SPELLED}
    return spelled + ("_" + hashlib.sha256(repr(rest).encode()).hexdigest()[:6] if rest else "")


def width_name(config):
    """'800' for two layers of 800, '128d1' for one layer of 128, '1200x600' for unequal ones,
    'cnn16x32k3bn-128' for a CNN (its stages' filters, kernel, convs per stage if more than
    one, batch norm, then its head): the net part of file names."""
    widths = config["hidden"]
    if config.get("arch", "mlp") == "cnn":
        convs = f"c{config['convs']}" if config.get("convs", 1) > 1 else ""
        bn = "bn" if config.get("batch_norm") else ""
        return (f"cnn{'x'.join(map(str, config['channels']))}k{config.get('kernel', 5)}{convs}{bn}"
                f"-{'x'.join(map(str, widths))}")
    if len(set(widths)) == 1:  # '800' for the paper's two layers, '128d1' for one of 128
        return str(widths[0]) if len(widths) == 2 else f"{widths[0]}d{len(widths)}"
    return "x".join(map(str, widths))
