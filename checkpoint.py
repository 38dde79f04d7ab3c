"""The files a run writes and reads back, never half-written: the finished net (OUT.pt, with
its config, and OUT.json), the resumable training state (OUT.resume.pt) and the Ctrl-C that
saves it, and the checks on a run's outputs before it starts (writable, not a finished run's,
not another running process's: OUT.lock). One home for everything that must survive a crash or
an interruption bit for bit.
"""
import atexit
import contextlib
import hashlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field

import torch

import training_params as tp
import dataset
import layers
from errors import CLEANUPS, UsageError


def load_net(path, device, dataset_name=None):
    """The net saved at `path` by these scripts, in eval mode on `device` (a torch.device or a
    name: "cpu", "cuda"): rebuilt from the checkpoint's config, weights only (no pickled code).
    With `dataset_name`, bad input unless the net fits that dataset's images and classes."""
    if not os.path.isfile(path):
        raise UsageError(f"no checkpoint at {path!r}; train one with train.py or pass its path")
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
        config, state = checkpoint["config"], checkpoint["state_dict"]
    except Exception as e:
        raise UsageError(f"{path!r} is not a readable checkpoint ({type(e).__name__}); "
                         "it may be truncated or not from these scripts: retrain it") from None
    try:
        net = layers.build(config)
        net.load_state_dict(state)
        finite = all(torch.isfinite(t).all() for t in state.values())
    except Exception as e:
        raise UsageError(f"{path!r} holds weights that do not fit its recorded architecture "
                         f"({type(e).__name__}); retrain it") from None
    if not finite:
        raise UsageError(f"{path!r} holds non-finite weights (a diverged run?); retrain it")
    if dataset_name is not None:
        check_fits(net, dataset_name, f"the net in {path!r}")
    return net.to(device).eval()


def save_run(out, net, record):
    """Write OUT.pt and OUT.json; each goes to a temporary file first, then is renamed."""
    checkpoint = {"state_dict": net.state_dict(), "config": net.config(),
                  "model": record["model"], "test_errors": record["test_errors"]}
    json_path = json_path_of(out)
    write_atomic({out: lambda f: torch.save(checkpoint, f),
                  json_path: lambda f: f.write(json.dumps(record, indent=1).encode())})
    release_outputs(out)
    return json_path


def write_atomic(writers):
    """{path: write(file)}: every file goes to a temporary name first, flushed to disk; only
    when all are complete are they renamed into place, so no reader sees a partial file. A
    file system that refuses (full, read-only) is reported as one line, not a traceback."""
    tmps = {path: f"{path}.tmp{os.getpid()}" for path in writers}
    try:
        for path, write in writers.items():
            with open(tmps[path], "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
        for path, tmp in tmps.items():
            os.replace(tmp, path)
    except OSError as e:
        raise UsageError(f"cannot write {e.filename or path!r} ({e.strerror})") from None
    finally:
        for tmp in tmps.values():
            if os.path.exists(tmp):
                os.remove(tmp)


def resume_path(out):
    return os.path.splitext(out)[0] + ".resume.pt"


def position(epoch, step):
    """Where a saved state stands, numbered as the progress lines number epochs (from 1)."""
    return (f"after epoch {epoch}" if step == 0 else f"in epoch {epoch + 1} after step {step}")


@dataclass
class Progress:
    """Where a run stands: what a resume restores besides the weights, the optimizer and the
    random streams (the same keys in OUT.resume.pt as before this class), and this process's
    own count of steps and time, for the ETA."""
    epochs: int                  # of the whole run
    epoch: int = 0               # epochs done
    step: int = 0                # steps done in the epoch after them
    history: list = field(default_factory=list)
    train_s: float = 0.0         # training time of the run so far, all processes
    wall_before: float = 0.0     # wall-clock of the run's earlier processes
    loss_total: torch.Tensor = None  # this epoch's batch losses x batch sizes, on the device
    started: float = field(default_factory=time.perf_counter)
    steps_here: int = 0

    def at(self, epoch, step):
        self.epoch, self.step = epoch, step
        return self

    def wall_s(self):
        return self.wall_before + time.perf_counter() - self.started

    def add(self, loss, count):
        self.loss_total += loss.detach() * count  # stays on the device: no sync per step
        self.steps_here += 1

    def close_epoch(self, tick, count):
        """The epoch's mean loss over its `count` examples; its time counted from `tick`."""
        mean = self.loss_total.item() / count
        self.loss_total.zero_()
        self.train_s += time.perf_counter() - tick
        return mean

    def eta(self, steps_per_epoch, epochs_left):
        """Seconds left at this process's pace (0 before its first step: a run resumed after
        an epoch's last step)."""
        per_step = (time.perf_counter() - self.started) / self.steps_here if self.steps_here else 0.0
        return per_step * steps_per_epoch * epochs_left


class Checkpoints:
    """The resumable training state of one run, at OUT.resume.pt: weights, optimizer (momentum
    buffers), epoch and step, both random streams (dropout; shuffling and jitter), the loss
    so far and the history. `identity` says what the run is (net, recipe, seed, device, data,
    teacher, ...); a checkpoint of another run is refused rather than silently continued, and
    a run without --resume refuses to overwrite one."""

    def __init__(self, out, every, identity, resume, keep=False):
        self.path, self.every, self.identity, self.resume = resume_path(out), every, identity, resume
        self.keep, self.saved_epoch = keep, None
        if not resume and unfinished(self.path):
            raise UsageError(f"{self.path!r} holds an unfinished earlier run: pass --resume to "
                             "continue it, or delete it to start afresh")

    def due(self, epoch):
        return self.every > 0 and epoch % self.every == 0

    def finish(self):
        """The run's results are written: its resume state goes, unless asked to keep it."""
        if not self.keep and os.path.exists(self.path):
            os.remove(self.path)

    def save(self, net, optimizer, data_rng, progress):
        """Save the run's state at `progress`' position; `data_rng`: the data stream's state to
        resume from (the epoch's start, when saved mid-epoch: a resume redoes its shuffle)."""
        device = next(net.parameters()).device
        state = {"identity": self.identity, "epoch": progress.epoch, "step": progress.step,
                 "epochs": progress.epochs, "history": progress.history,
                 "train_s": progress.train_s, "wall_s": progress.wall_s(),
                 "loss_total": progress.loss_total.cpu(),
                 "net": net.state_dict(), "optimizer": optimizer.state_dict(),
                 "data_rng": data_rng, "torch_rng": torch.get_rng_state(),
                 "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
        write_atomic({self.path: lambda f: torch.save(state, f)})
        self.saved_epoch = progress.epoch

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
            # a field the saved recipe lacks was held by its former field, or had its recipe's
            # default then
            saved, recipe = stored[key], tp.PARAMS_BY_NAME.get(stored[key].get("name"))
            return {k: tp.recorded(saved, k, getattr(recipe, k, None)) for k in self.identity["params"]}
        if key == "config" and isinstance(stored.get(key), dict):
            try:  # a config saved before a field was added means that field's default
                return layers.build(stored[key]).config()
            except (TypeError, ValueError):
                return stored[key]
        return stored.get(key)

    def load(self, net, optimizer, generator, epochs):
        """Restore a saved state into net, optimizer and the random streams and return its
        Progress (of a run of `epochs`); None if there is none to resume (a run of a sweep that
        had not started yet starts afresh)."""
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
        differs = [f"{k} (saved {a!r}, now {b!r})" for k, a, b in self.differences(stored)]
        if differs:
            raise UsageError(f"--resume: {self.path!r} belongs to a different run (it differs in "
                             f"{'; '.join(differs)}); repeat the original command, or delete it")
        device = next(net.parameters()).device
        net.load_state_dict(state["net"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["data_rng"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        self.saved_epoch = state["epoch"]
        print(f"resumed from {self.path}: {position(state['epoch'], state['step'])}")
        return Progress(epochs, state["epoch"], state["step"], state["history"],
                        state["train_s"], state["wall_s"], state["loss_total"].to(device))

    def differences(self, stored):
        """(field, saved, now) for each field of the identity that differs; inside the recipe
        and the net's config, the differing fields themselves (params.distill_lr, ...)."""
        out = []
        for key in sorted(set(stored) | set(self.identity)):
            saved, now = self.compared(stored, key), self.identity.get(key)
            if saved == now:
                continue
            if isinstance(saved, dict) and isinstance(now, dict):
                out += [(f"{key}.{k}", saved.get(k), now.get(k)) for k in sorted(set(saved) | set(now))
                        if saved.get(k) != now.get(k)]
            else:
                out.append((key, saved, now))
        return out


def checkpoints_of(args, out, role, params, config, data, device, **more):
    """The Checkpoints of a run on `device` (None for a dry run), identified by all that shapes
    its result; `data` is a fingerprint of the training set."""
    if args.dry_run:
        return None
    identity = {"model": role, "config": config, "params": tp.used_by(params, role), "seed": args.seed,
                "device": torch.device(device).type, "data": data,
                **({"precision": args.precision} if args.precision != "fp32" else {}), **more}
    return Checkpoints(out, args.checkpoint_every, identity, args.resume, args.keep_resume)


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
        digest.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
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


def dataset_of(net):
    """The dataset whose pixel statistics the net normalizes with (they are in its config), or
    None if none matches."""
    return next((name for name, info in dataset.DATASETS.items()
                 if [round(m, 4) for m in net.mean] == list(info.mean)
                 and [round(s, 4) for s in net.std] == list(info.std)), None)


def check_fits(net, name, what):
    """Bad input unless `net` (a loaded teacher, say) takes dataset `name`'s images and
    predicts its classes."""
    info = dataset.DATASETS[name]
    pixels = info.shape[0] * info.shape[1] * info.shape[2]
    if net.in_features == pixels and net.classes == info.classes and dataset_of(net) not in (None, name):
        raise UsageError(f"{what} was trained on {dataset_of(net)} (its input normalization says "
                         f"so), not on {name}: add --dataset {dataset_of(net)} to use it, or pass "
                         f"a net trained on {name}")
    if net.in_features != pixels or net.classes != info.classes:
        raise UsageError(f"{what} takes {net.in_features} pixels and predicts {net.classes} "
                         f"classes, but {name} has {'x'.join(map(str, info.shape))} images and "
                         f"{info.classes} classes: pass one trained with --dataset {name}")


def check_output(args, out):
    """A training run's output: writable, not a finished run's unless --overwrite (or --resume,
    which keeps a finished run's results, or --dry-run, which writes nothing), and not another
    running process's (see `claim_output`)."""
    check_writable(out)
    if (os.path.exists(json_path_of(out)) and not (args.overwrite or args.resume or args.dry_run)):
        raise UsageError(f"{json_path_of(out)!r} holds a finished run; pass --overwrite to replace "
                         "it, or pick another --out")
    if not args.dry_run:
        claim_output(out)


_claimed = []  # the lock files this process holds: each removed once its outputs are written,
atexit.register(lambda: release_outputs())  # the rest when the process (or main: CLEANUPS) ends
CLEANUPS.append(lambda: release_outputs())


def claim_output(out):
    """Take OUT.lock (holding this process's id) for the rest of the run, so that a second run
    to the same --out refuses at once instead of both training and one overwriting the other.
    A lock whose process is gone (a killed run) is taken over."""
    lock = lock_path(out)
    if lock in _claimed:
        return
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = lock_holder(lock)
            if holder is not None:
                raise UsageError(f"{out!r} is being written by another run (process {holder}, "
                                 f"{lock}); wait for it to end, or pick another --out") from None
            with contextlib.suppress(FileNotFoundError):
                os.remove(lock)  # a killed run's
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        _claimed.append(lock)
        return


def lock_holder(lock):
    """The id of the live process that holds `lock`, or None (gone, or not a lock of ours)."""
    try:
        with open(lock) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)  # signal 0: does it exist?
    except (OSError, ValueError):
        return None
    return pid


def release_outputs(out=None):
    """Remove this process's lock of `out` (its outputs are written), or all it holds (at exit:
    a run that failed)."""
    for lock in [lock for lock in _claimed if out is None or lock == lock_path(out)]:
        _claimed.remove(lock)
        with contextlib.suppress(FileNotFoundError):
            os.remove(lock)


def lock_path(out):
    return os.path.splitext(out)[0] + ".lock"


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
