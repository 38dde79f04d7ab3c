"""Train a net on hard labels.

    python train.py --model teacher                 # 784-1200-1200-10, dropout, max-norm, jitter
    python train.py --model small --hidden 800      # 784-800-800-10, no regularization

Also the shared machinery of the other scripts: command line, data, training loop, evaluation,
checkpoints. Writes OUT.pt (state_dict + config) and OUT.json (results) atomically.
"""
import argparse
import contextlib
import copy
import hashlib
import json
import math
import os
import platform
import shlex
import signal
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

import dataset
import training_params as tp
from layers import MLP, describe

DEFAULT_HIDDEN = {"teacher": [1200, 1200], "small": [800, 800], "student": [800, 800]}
FILE_PREFIX = {"teacher": "cumbersome_model", "small": "small_model", "student": "distilled_model"}


class UsageError(Exception):
    """Bad input: reported as one line on stderr with exit code 2."""


class Diverged(Exception):
    """The training loss stopped being finite."""


class Interrupted(Exception):
    """Ctrl-C during training: the state was checkpointed after the current step."""
    def __init__(self, epoch, step, path):
        super().__init__(f"interrupted in epoch {epoch} after step {step}; the training state "
                         f"is saved in {path}")


# ---------------------------------------------------------------------------- command line
class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage dump
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def make_parser(doc):
    p = Parser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="data", help="MNIST root (downloaded there if absent)")
    p.add_argument("--params", choices=sorted(tp.PARAMS), default="local",
                   help="recipe: 'local' = CPU demo, 'paper' = full 3000-epoch recipe")
    p.add_argument("--epochs", type=int, help="epochs of this run (default: the recipe's)")
    p.add_argument("--lr", type=float, help="peak learning rate of this run (default: the recipe's)")
    p.add_argument("--seed", type=int, default=1, help="seeds init, shuffling, dropout, jitter")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--hidden", type=int, nargs="+", metavar="W",
                   help="hidden widths; one value W means two layers of W")
    p.add_argument("--holdout", type=int, default=0, metavar="N",
                   help="hold N training images out of training (the same N for every run and "
                        "seed) and report their errors as val_errors: for choosing recipes "
                        "without the test set (default: 0, train on all)")
    p.add_argument("--subset", type=float, default=1.0, metavar="FRACTION",
                   help="train on a seeded random fraction of the training images")
    classes = p.add_mutually_exclusive_group()
    classes.add_argument("--omit", type=int, nargs="+", default=[], metavar="C",
                         help="drop these classes from the training set")
    classes.add_argument("--only", type=int, nargs="+", default=[], metavar="C",
                         help="keep only these classes in the training set")
    p.add_argument("--out", help="checkpoint path OUT.pt (results go to OUT.json)")
    p.add_argument("--dry-run", action="store_true",
                   help="one epoch of 10 batches, nothing written: a quick check")
    p.add_argument("--resume", action="store_true",
                   help="continue the run from its OUT.resume.pt (same command otherwise)")
    p.add_argument("--checkpoint-every", type=int, default=5, metavar="N",
                   help="save the training state to OUT.resume.pt every N epochs, at the end "
                        "and on Ctrl-C (0: only at the end and on Ctrl-C; default %(default)s)")
    tp.add_param_flags(p)
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
    if not 0 <= args.holdout < 60000:
        raise UsageError(f"--holdout must be in [0, 60000), got {args.holdout}")
    if not (math.isfinite(args.subset) and 0 < args.subset <= 1):
        raise UsageError(f"--subset must be a fraction in (0, 1], got {args.subset}")
    bad = [c for c in args.omit + args.only if not 0 <= c <= 9]
    if bad:
        raise UsageError(f"unknown class {bad[0]}: MNIST classes are 0-9")
    if len(set(args.omit)) == 10:
        raise UsageError("--omit removes all ten classes: nothing left to train on")


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


def default_out(role, config, suffix="", tag=""):
    """runs/PREFIX[_TAG]_WIDTH[SUFFIX].pt, e.g. runs/distilled_model_wo3_800_20.pt."""
    widths = config["hidden"]
    name = str(widths[0]) if len(set(widths)) == 1 else "x".join(map(str, widths))
    prefix = f"{FILE_PREFIX[role]}_{tag}" if tag else FILE_PREFIX[role]
    return os.path.join("runs", f"{prefix}_{name}{suffix}.pt")


def check_writable(out):
    for path in (out, json_path_of(out)):
        if os.path.isdir(path):
            raise UsageError(f"output {path!r} is a folder; pick another --out")
    folder = os.path.dirname(os.path.abspath(out))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create output folder {folder!r} ({e.strerror}); pick another --out")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"output folder {folder!r} is not writable; pick another --out")


def json_path_of(out):
    return os.path.splitext(out)[0] + ".json"


# ---------------------------------------------------------------------------- data
def load_data(args, device, all_classes=False):
    """(train, val, test), each (images, labels): val is the --holdout split of the training
    images (None without one), taken before the subset and, unless `all_classes`, the class
    filter (--omit / --only) are applied to the rest."""
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
        train = dataset.filter_classes(*train, omit=args.omit, only=args.only)
    if args.subset < 1:
        train = dataset.random_subset(*train, args.subset, data_seed(args.seed))
    if len(train[1]) == 0:
        raise UsageError(f"no training images left after --omit {args.omit} / --only {args.only}")
    return train, val, test


def data_seed(seed):
    """Seed of the data stream (subset, shuffles, jitter), apart from the init/dropout stream."""
    return seed + 2 ** 32


# ---------------------------------------------------------------------------- nets
def init_net(config, seed, device):
    """A fresh net whose initial weights depend on the config and seed only, so the small net
    and the distilled student of one seed start from identical weights."""
    torch.manual_seed(seed)
    return MLP(**config).to(device)


def load_net(path, device):
    """A net from a checkpoint written by these scripts (weights only, no pickled code)."""
    if not os.path.isfile(path):
        raise UsageError(f"no checkpoint at {path!r}; train one with train.py or pass its path")
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
        config, state = checkpoint["config"], checkpoint["state_dict"]
    except Exception as e:
        raise UsageError(f"{path!r} is not a readable checkpoint ({type(e).__name__}); "
                         "it may be truncated or not from these scripts: retrain it") from None
    try:
        net = MLP(**config)
        net.load_state_dict(state)
        finite = all(torch.isfinite(t).all() for t in state.values())
    except Exception as e:
        raise UsageError(f"{path!r} holds weights that do not fit its recorded architecture "
                         f"({type(e).__name__}); retrain it") from None
    if not finite:
        raise UsageError(f"{path!r} holds non-finite weights (a diverged run?); retrain it")
    if net.in_features != dataset.SIDE ** 2 or net.classes != 10:
        raise UsageError(f"{path!r} is a {describe(net.config())} net, not an MNIST classifier "
                         "(784 inputs, 10 classes)")
    return net.to(device).eval()


@torch.no_grad()
def logits_of(net, images, chunk=10000):
    net.eval()
    return torch.cat([net(images[i:i + chunk]) for i in range(0, len(images), chunk)])


def evaluate(net, images, labels):
    """(errors, per-class errors as 10 ints, predictions)."""
    predictions = logits_of(net, images).argmax(1)
    wrong = labels[predictions != labels]
    per_class = torch.bincount(wrong, minlength=10).tolist()
    return sum(per_class), per_class, predictions


# ---------------------------------------------------------------------------- training loop
def make_optimizer(net, params, lr):
    if params.optimizer == "adamw":  # no weight decay: the paper's student has no regularizer
        return torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    momentum = tp.momentum_at(params, 0)
    # fused: one pass over each weight, gradient and momentum buffer instead of several
    return torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, nesterov=params.nesterov,
                           dampening=momentum if params.dampening else 0.0, fused=True)


def fit(net, train_set, test_set, params, *, epochs, lr, seed, batch_loss, jitter=0,
        max_steps=None, checkpoints=None, warmup_steps=0, val_set=None):
    """Train `net` for `epochs` epochs at peak rate `lr`; returns (history, timing).

    train_set = [images, labels, extra]: `extra` is a per-example tensor shuffled and batched
    along with the images (the teacher's cached logits of a distillation), or None.
    `batch_loss(net, images, labels, extra)` gives the loss of one batch. One progress line per
    epoch; the test set (and the held-out `val_set`, if any) is evaluated after each epoch. With
    `checkpoints` (a Checkpoints), the full training state is saved every few epochs, at the
    end and on a first Ctrl-C, and a resumed run continues bit for bit where it stopped.
    `warmup_steps`: optimizer steps of linear lr rise (at most a quarter of the run)."""
    optimizer = make_optimizer(net, params, lr)
    generator = torch.Generator().manual_seed(data_seed(seed))
    n, bs = len(train_set[1]), params.batch_size
    steps = math.ceil(n / bs) if max_steps is None else min(max_steps, math.ceil(n / bs))
    warmup = tp.warmup_length(warmup_steps, steps * epochs)
    average = copy.deepcopy(net) if params.ema else None
    weights = net if average is None else torch.nn.ModuleList([net, average])  # what a resume restores
    watched = net if average is None else average  # the net evaluated and returned
    state = checkpoints.load(weights, optimizer, generator) if checkpoints else None
    first_epoch, first_step, history, train_s, wall_before, total = (
        (state["epoch"], state["step"], state["history"], state["train_s"], state["wall_s"],
         state["loss_total"].to(train_set[1].device)) if state else
        (0, 0, [], 0.0, 0.0, torch.zeros((), device=train_set[1].device)))
    started = time.perf_counter()
    with interrupt_after_step() as interrupted:
        for epoch in range(first_epoch, epochs):
            tick = time.perf_counter()
            net.train()
            set_momentum(optimizer, params, epoch)
            epoch_start_rng = generator.get_state()  # a resume redoes this epoch's shuffle and jitter
            images, labels, extra = dataset.shuffled(train_set, generator)
            images = dataset.jitter(images, jitter, generator)
            for step, (x, y, e) in enumerate(dataset.batches([images, labels, extra], bs)):
                if step == steps:
                    break
                if step < first_step:
                    continue
                for group in optimizer.param_groups:
                    group["lr"] = tp.lr_at(params, lr, epoch, step, steps, epochs, warmup)
                loss = batch_loss(net, x, y, e)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                net.apply_max_norm()
                if average is not None:
                    update_average(average, net, params.ema)
                total += loss.detach() * len(y)  # stays on the device: no sync per step
                if interrupted() and checkpoints and torch.isfinite(total):
                    train_s += time.perf_counter() - tick
                    checkpoints.save(weights, optimizer, epoch_start_rng, epoch, step + 1, epochs,
                                     history, train_s, wall_before + time.perf_counter() - started,
                                     total)
                    raise Interrupted(epoch + 1, step + 1, checkpoints.path)
                if interrupted():
                    raise KeyboardInterrupt
            first_step = 0
            mean_loss = total.item() / min(n, steps * bs)
            total.zero_()
            train_s += time.perf_counter() - tick
            entry = {"epoch": epoch + 1, "loss": mean_loss}
            if math.isfinite(mean_loss):
                entry["test_errors"] = evaluate(watched, *test_set)[0]
                if val_set is not None:
                    entry["val_errors"] = evaluate(watched, *val_set)[0]
            problem = blow_up(history, entry, len((val_set or test_set)[1]))
            if problem:
                raise Diverged(f"{problem} in epoch {epoch + 1}"
                               f"{checkpoints.last_good() if checkpoints else ''}; "
                               "start again with a lower --lr")
            history.append(entry)
            seen = (epoch + 1) * min(n, steps * bs)
            eta = (time.perf_counter() - started) / (epoch + 1 - first_epoch) * (epochs - epoch - 1)
            val = f" | val errors {entry['val_errors']:5d}" if val_set is not None else ""
            print(f"epoch {epoch + 1:4d}/{epochs} | loss {mean_loss:.4f}{val} | test errors "
                  f"{entry['test_errors']:5d} ({100 * entry['test_errors'] / len(test_set[1]):.2f}%)"
                  f" | {seen / train_s:7.0f} samples/s | ETA {format_seconds(eta)}", flush=True)
            if checkpoints and checkpoints.due(epoch + 1, epochs):
                checkpoints.save(weights, optimizer, generator.get_state(), epoch + 1, 0, epochs,
                                 history, train_s, wall_before + time.perf_counter() - started,
                                 total)
    if average is not None:
        net.load_state_dict(average.state_dict())  # the run's result is the averaged net
    trained = len(history) * min(n, steps * bs)
    return history, {"train_s": train_s, "samples_per_s": trained / train_s if train_s else 0.0,
                     "wall_s_before_resume": wall_before}


@torch.no_grad()
def update_average(average, net, decay):
    """Exponential moving average of the weights, after each step: a = decay a + (1 - decay) w.
    Evaluated and saved in place of the last weights (a training trick, not another model)."""
    for a, w in zip(average.parameters(), net.parameters()):
        a.lerp_(w, 1.0 - decay)


LOSS_JUMP = 3.0       # an epoch's loss over this many times its best and above its first
NEAR_CHANCE = 0.8     # this fraction of the watched images wrong, after fewer than half were


def blow_up(history, entry, watched_count):
    """Why the epoch in `entry` (loss, errors) means the run diverged, or None: a non-finite
    loss; a loss above the first epoch's and over 3x its best (small losses may wobble by 3x
    near 0; a blow-up undoes the training); or errors back near chance on the watched images
    (the held-out ones if any, else the test set) after the run had learned. A finite blow-up
    is as fatal as a NaN: the net rarely recovers (results/sweep30_lr0.05)."""
    loss = entry["loss"]
    if not math.isfinite(loss):
        return f"training loss became {loss}"
    best = min([h["loss"] for h in history], default=math.inf)
    if history and loss > LOSS_JUMP * best and loss > history[0]["loss"]:
        return (f"training loss jumped to {loss:.4g}, above its first epoch's "
                f"({history[0]['loss']:.4g}) and over {LOSS_JUMP:g}x its best ({best:.4g})")
    key = "val_errors" if "val_errors" in entry else "test_errors"
    fewest = min([h[key] for h in history if key in h] + [entry[key]])
    if entry[key] >= NEAR_CHANCE * watched_count and fewest < 0.5 * watched_count:
        return f"{entry[key]} of {watched_count} watched images wrong, back near chance"
    return None


def run_length(args, epochs):
    """(epochs, max_steps per epoch) of a run: a --dry-run is one epoch of 10 steps."""
    return (1, 10) if args.dry_run else (epochs, None)


def set_momentum(optimizer, params, epoch):
    if params.optimizer != "sgd":
        return
    momentum = tp.momentum_at(params, epoch)
    for group in optimizer.param_groups:
        group["momentum"] = momentum
        group["dampening"] = momentum if params.dampening else 0.0


# ---------------------------------------------------------------------------- checkpoints
def resume_path(out):
    return os.path.splitext(out)[0] + ".resume.pt"


class Checkpoints:
    """The resumable training state of one run, at OUT.resume.pt: weights, optimizer (momentum
    buffers), epoch and step, both random streams (dropout; shuffling and jitter), the loss
    so far and the history. `identity` says what the run is (net, recipe, seed, device, data,
    teacher, ...); a checkpoint of another run is refused rather than silently continued, and
    a run without --resume refuses to overwrite one."""

    def __init__(self, out, every, identity, resume):
        self.path, self.every, self.identity, self.resume = resume_path(out), every, identity, resume
        self.saved_epoch = None
        if not resume and unfinished(self.path):
            raise UsageError(f"{self.path!r} holds an unfinished earlier run: pass --resume to "
                             "continue it, or delete it to start afresh")

    def due(self, epoch, epochs):
        return epoch == epochs or (self.every > 0 and epoch % self.every == 0)

    def save(self, net, optimizer, data_rng, epoch, step, epochs, history, train_s, wall_s,
             loss_total):
        device = next(net.parameters()).device
        state = {"identity": self.identity, "epoch": epoch, "step": step, "epochs": epochs,
                 "history": history,
                 "train_s": train_s, "wall_s": wall_s, "loss_total": loss_total.cpu(),
                 "net": net.state_dict(), "optimizer": optimizer.state_dict(),
                 "data_rng": data_rng, "torch_rng": torch.get_rng_state(),
                 "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
        write_atomic({self.path: lambda f: torch.save(state, f)})
        self.saved_epoch = epoch

    def last_good(self):
        """For the divergence message: where this run's last finite state is, if it saved one."""
        if self.saved_epoch is None:
            return ""
        return (f"; the state after epoch {self.saved_epoch} is kept in {self.path} (its loss "
                "was finite)")

    def compared(self, stored, key):
        """The stored identity's `key`; of its recipe, only the fields this run uses (a
        checkpoint written before a recipe field was added still resumes)."""
        if key == "params" and isinstance(stored.get(key), dict) and "params" in self.identity:
            return {k: stored[key].get(k) for k in self.identity["params"]}
        return stored.get(key)

    def load(self, net, optimizer, generator):
        """Restore a saved state into net, optimizer and the random streams; None if there is
        none to resume (a run of a sweep that had not started yet starts afresh)."""
        if not self.resume:
            return None
        if not os.path.isfile(self.path):
            print(f"--resume: no saved state at {self.path}, starting this run afresh")
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
            stored = state["identity"]
        except Exception as e:
            raise UsageError(f"--resume: {self.path!r} is not a readable checkpoint "
                             f"({type(e).__name__}); delete it and run without --resume") from None
        differs = sorted(k for k in set(stored) | set(self.identity)
                         if self.compared(stored, k) != self.identity.get(k))
        if differs:
            raise UsageError(f"--resume: {self.path!r} belongs to a different run (it differs in "
                             f"{', '.join(differs)}); repeat the original command, or delete it")
        device = next(net.parameters()).device
        net.load_state_dict(state["net"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["data_rng"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        self.saved_epoch = state["epoch"]
        print(f"resumed from {self.path}: epoch {state['epoch']}, step {state['step']}")
        return state


def unfinished(path):
    """Whether `path` holds the state of a run that stopped before its last epoch: too
    valuable to overwrite without being asked. A finished run's state is not."""
    if not os.path.exists(path):
        return False
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        return state["step"] > 0 or state["epoch"] < state["epochs"]
    except Exception:
        return False  # not a state these scripts wrote: nothing to lose


def fingerprint(*tensors):
    """A short hash of tensors' contents: the same data, or the same teacher, for a resume."""
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def interrupt_after_step():
    """A first Ctrl-C only raises a flag, which the loop checks after each step; a second one
    stops at once. Yields the function that reads the flag."""
    hit = []

    def first(signum, frame):
        hit.append(signum)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print("\nCtrl-C: stopping after this step (press again to stop at once)", file=sys.stderr)

    try:
        previous = signal.signal(signal.SIGINT, first)
    except ValueError:  # not the main thread: leave Ctrl-C as it is
        yield lambda: False
        return
    try:
        yield lambda: bool(hit)
    finally:
        signal.signal(signal.SIGINT, previous)


def hard_label_loss(net, images, labels, _extra):
    return F.cross_entropy(net(images), labels)


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


def format_seconds(s):
    s = int(round(s))
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


# ---------------------------------------------------------------------------- results
def checkpoints_of(args, out, role, params, config, data, **more):
    """The Checkpoints of a run (None for a dry run), identified by all that shapes its result;
    `data` is a fingerprint of the training set."""
    if args.dry_run:
        return None
    identity = {"model": role, "config": config, "params": tp.used_by(params, role), "seed": args.seed,
                "device": torch.device(resolve_device(args.device)).type, "data": data,
                **more}
    return Checkpoints(out, args.checkpoint_every, identity, args.resume)


def run_record(args, params, role, net, train_count, test_set, history, timing, wall_s, device,
               val_set=None, **extra):
    errors, per_class, _ = evaluate(net, *test_set)
    held_out = {} if val_set is None else {"val_errors": evaluate(net, *val_set)[0],
                                           "val_count": len(val_set[1])}
    return {"model": role, "architecture": describe(net.config()), "config": net.config(),
            "test_errors": errors, "per_class_errors": per_class, "test_count": len(test_set[1]),
            "holdout": args.holdout, **held_out,
            "epochs": len(history), "seed": args.seed, "params": tp.as_dict(params),
            "train_count": int(train_count), "subset": args.subset, "omit": args.omit,
            "only": args.only,
            "samples_per_s": round(timing["samples_per_s"], 1),
            "train_s": round(timing["train_s"], 2),
            "wall_s": round(wall_s + timing.get("wall_s_before_resume", 0.0), 2),
            "device": str(device), "hardware": hardware(device), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "code_version": code_version(),
            "command": " ".join(sys.argv), **extra,
            "history": history}


def save_run(out, net, record):
    """Write OUT.pt and OUT.json; each goes to a temporary file first, then is renamed."""
    checkpoint = {"state_dict": net.state_dict(), "config": net.config(),
                  "model": record["model"], "test_errors": record["test_errors"]}
    json_path = json_path_of(out)
    write_atomic({out: lambda f: torch.save(checkpoint, f),
                  json_path: lambda f: f.write(json.dumps(record, indent=1).encode())})
    return json_path


def write_atomic(writers):
    """{path: write(file)}: every file goes to a temporary name first, flushed to disk; only
    when all are complete are they renamed into place, so no reader sees a partial file."""
    tmps = {path: f"{path}.tmp{os.getpid()}" for path in writers}
    try:
        for path, write in writers.items():
            with open(tmps[path], "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
        for path, tmp in tmps.items():
            os.replace(tmp, path)
    finally:
        for tmp in tmps.values():
            if os.path.exists(tmp):
                os.remove(tmp)


def print_summary(rows):
    """rows: list of (name, errors or None, test_count, note)."""
    print(f"\n{'model':<34} {'test errors':>11} {'error %':>8}  note")
    for name, errors, count, note in rows:
        shown = ("-", "-") if errors is None else (errors, f"{100 * errors / count:.2f}")
        print(f"{name:<34} {shown[0]:>11} {shown[1]:>8}  {note}")


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


# ---------------------------------------------------------------------------- main
@report_errors
def main(argv=None):
    parser = make_parser(__doc__)
    parser.add_argument("--model", choices=["teacher", "small"], default="teacher")
    args = parser.parse_args(argv)
    role = args.model
    params = tp.params_from_args(args, "teacher_epochs" if role == "teacher" else "epochs")
    check_common(args, params)
    device = resolve_device(args.device)
    config = net_config(args, params, role)
    out = args.out or default_out(role, config)
    check_writable(out)
    epochs, max_steps = run_length(args, params.teacher_epochs if role == "teacher" else params.epochs)
    jitter = regularizer(args, params, role, "jitter")

    started = time.perf_counter()
    train_set, val_set, test_set = load_data(args, device)
    net = init_net(config, args.seed, device)
    print(f"{role}: {describe(net.config())} on {device}, {len(train_set[1])} training images, "
          f"{epochs} epochs, {type(params).__name__}, jitter {jitter}, seed {args.seed}")
    checkpoints = checkpoints_of(args, out, role, params, config, fingerprint(*train_set),
                                 jitter=jitter)
    history, timing = fit(net, [*train_set, None], test_set, params, epochs=epochs, lr=params.lr,
                          seed=args.seed, batch_loss=hard_label_loss, jitter=jitter,
                          max_steps=max_steps, checkpoints=checkpoints, val_set=val_set)
    record = run_record(args, params, role, net, len(train_set[1]), test_set, history, timing,
                        time.perf_counter() - started, device, val_set=val_set, jitter=jitter)
    if args.dry_run:
        print("dry run: nothing written")
    else:
        print(f"wrote {out} and {save_run(out, net, record)}")
    print_summary([(f"{role} {record['architecture']}", record["test_errors"],
                    record["test_count"], f"{epochs} epochs, {timing['samples_per_s']:.0f} samples/s")])
    return record


if __name__ == "__main__":
    main()
