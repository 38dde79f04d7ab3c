"""Training recipes: `PaperParams` (the paper's full recipe) and `LocalParams` (a CPU demo).

Every field can be overridden from the command line of each script (`--field-name value`).
The common flags `--epochs`, `--lr` and `--batch-size` always mean "of this run": for the
teacher they set `teacher_epochs`, for a distilled student `distill_epochs`, `distill_lr` and
`distill_batch_size`.
"""
import math
from dataclasses import dataclass, fields, asdict


@dataclass
class PaperParams:
    """Hinton et al. (2012) / Srivastava et al. (2014) dropout recipe, as used for the teacher.

    The distillation paper does not give the student's optimizer, epochs or hard/soft weighting;
    we reuse the teacher's optimizer for the students (see README).

    One change from the 2012 text: the learning rate is 1, not 10. At 10 (with the gradient
    averaged over the minibatch, as the paper and the dropout authors' code take it) every
    hidden ReLU of the teacher is dead within about 20 steps and the small net's loss becomes
    NaN in its first epoch; the 2012 paper's 10 fits logistic units better than ReLUs. The
    dropout authors' own toolkit (deepnet, its ReLU MNIST example) starts at 1.0, and so does
    the public ReLU reproduction of the 2012 MNIST result (mdenil/dropout, ~100 errors). The
    student's lr is ours, 0.3: the distillation paper gives no student recipe, and at 1 a
    student at T = 20 diverged in its first epoch (with or without a 600-step warmup). The
    rest is the 2012 recipe: momentum 0.5 -> 0.99 over 500 epochs with the (1 - p) factor,
    N(0, 0.01) weights and zero biases (biases not max-normed), squared length 15 on each
    hidden unit's incoming weights, minibatch 100, mean cross-entropy, raw pixels in [0, 1].
    Two differences of form remain, stated in docs/PAPER_RECIPE.md: dropout here is inverted
    (kept units scaled by 1/(1 - p) in training, not the weights at test time), so the same
    lr and max-norm are about 1.6x (input layer) to 4x (hidden layers) larger steps and a 1.25-2x
    looser bound in the 2012 net's units; and PyTorch's SGD takes the very first step undamped."""
    epochs: int = 3000              # small net on hard labels
    teacher_epochs: int = 3000
    distill_epochs: int = 3000      # distilled student
    batch_size: int = 100           # teacher and small net
    distill_batch_size: int = 100   # distilled student
    lr: float = 1.0                 # at epoch e: lr * lr_decay**e (2012: 10, see above)
    distill_lr: float = 0.3         # ours (the paper gives none): at 1, T = 20 diverges in epoch 1
    distill_warmup_steps: int = 0   # linear lr warmup of the student from 0, in optimizer steps
    optimizer: str = "sgd"          # "sgd" (with the momentum fields) or "adamw" (no weight decay)
    lr_schedule: str = "exp"        # "exp" (per epoch), "cosine" or "constant" (per step, to 0)
    lr_decay: float = 0.998
    momentum: float = 0.99          # reached after momentum_ramp_epochs
    momentum_start: float = 0.5     # rises linearly to `momentum`
    momentum_ramp_epochs: int = 500
    dampening: bool = True          # v <- p v - (1 - p) lr g, as in the 2012 code
    nesterov: bool = False
    ema: float = 0.0                # decay of a moving average of the weights per step; 0 = none
    init_std: float = 0.01          # weights ~ N(0, init_std); 0 = PyTorch's default init
    standardize: bool = False       # raw pixels in [0, 1], as in 2012
    dropout_input: float = 0.2      # teacher only
    dropout_hidden: float = 0.5     # teacher only
    max_norm: float = math.sqrt(15.0)  # bound 15 on each unit's squared incoming length
    jitter: int = 2                 # teacher only: random shifts of up to this many pixels
    T: float = 20.0
    alpha: float = 0.9              # weight of the soft (distillation) term
    teacher_dropout: bool = False   # students: soft targets from the teacher with dropout on


@dataclass
class LocalParams(PaperParams):
    """A recipe for 2 CPU cores, from a short calibration on this hardware (Nesterov SGD,
    cosine decay, standardized inputs, a warmup for the student). On one CPU core: the small
    net a few minutes, the student 10-25 (machines here differ 2x), the teacher 2-4.5 hours (the
    repo ships a 300-epoch one); the README's wall-clock column has the measured times."""
    epochs: int = 30
    teacher_epochs: int = 600       # chosen on held-out images over 3 seeds (results/teacher_study)
    distill_epochs: int = 60
    lr: float = 0.03
    distill_lr: float = 0.02        # chosen on held-out images over 3 seeds (results/student_study)
    distill_batch_size: int = 50    # ditto: 4.7 fewer val errors than 100 over 3 seeds
    distill_warmup_steps: int = 1200  # 1 epoch of 60k at batch 50; without it 0.03 diverged in epoch 1 at T = 20
    lr_schedule: str = "cosine"
    momentum: float = 0.9
    momentum_start: float = 0.9
    momentum_ramp_epochs: int = 0
    dampening: bool = False
    nesterov: bool = True
    init_std: float = 0.0
    standardize: bool = True
    max_norm: float = 3.5


PARAMS = {"local": LocalParams, "paper": PaperParams}
PARAMS_BY_NAME = {cls.__name__: cls() for cls in PARAMS.values()}  # as records name them
RUN_FLAGS = {"epochs", "lr", "batch_size"}  # common flags that set the field of the run's role
ROLE_FIELDS = {"teacher_epochs", "distill_epochs", "distill_lr", "distill_batch_size"}
DISTILL_FIELDS = {"T", "alpha"}  # flags of distillation.py only


HELP = {
    "distill_warmup_steps": "distilled students: the lr rises linearly from 0 over this many "
                            "optimizer steps, at most a quarter of the run (a fresh student's "
                            "soft-target gradients are large)",
    "lr_schedule": "'exp': lr * lr_decay**epoch; 'cosine': per-step cosine decay to 0; "
                   "'constant': lr held, then a linear decay to 0 over the last fifth of the run",
    "optimizer": "'sgd' (the momentum fields below) or 'adamw' (Adam, no weight decay)",
    "ema": "evaluate and save a moving average of the weights with this decay per step "
           "(e.g. 0.999); 0 = the last weights",
    "lr_decay": "per-epoch factor of the 'exp' schedule",
    "momentum": "SGD momentum (final value of the ramp)",
    "momentum_start": "momentum at epoch 0, rising linearly to --momentum",
    "momentum_ramp_epochs": "epochs of the momentum ramp (0 = constant momentum)",
    "dampening": "1: v <- p v + (1 - p) g, the 2012 damped momentum",
    "nesterov": "1: Nesterov momentum",
    "init_std": "weights ~ N(0, std) and zero biases; 0 = PyTorch's default init",
    "standardize": "1: the net standardizes its pixels with its dataset's per-channel mean and "
                   "std",
    "dropout_input": "input dropout (the teacher's; other nets only when given)",
    "dropout_hidden": "hidden dropout (the teacher's; other nets only when given)",
    "max_norm": "bound on each hidden unit's incoming weight norm, 0 = none "
                "(the teacher's; other nets only when given)",
    "teacher_dropout": "1: each batch's soft targets come from the teacher with its dropout "
                       "on, one random member of its ensemble (a variant outside the paper)",
    "jitter": "random shifts of up to N px of the training (transfer) images "
              "(the teacher's; other nets only when given)",
}


def add_param_flags(parser, skip=()):
    """One `--field-name` flag per field but `skip` (default None = keep the recipe's value)."""
    group = parser.add_argument_group("recipe fields (default: the --params recipe's value)")
    local, paper = LocalParams(), PaperParams()
    for f in fields(PaperParams):
        if f.name in RUN_FLAGS | ROLE_FIELDS | DISTILL_FIELDS or f.name in skip:
            continue
        show = "s" if f.type is str else "g"
        defaults = f"local {getattr(local, f.name):{show}}, paper {getattr(paper, f.name):{show}}"
        kind = parse_bool if f.type is bool else f.type
        group.add_argument(flag(f.name), type=kind, default=None,
                           metavar="{0,1}" if f.type is bool else f.type.__name__.upper(),
                           help=f"{HELP[f.name]} ({defaults})")


def parse_bool(text):
    """'1'/'0' (or true/false, yes/no) for the boolean fields."""
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise ValueError(text)


def params_from_args(args, epochs_field="epochs", lr_field="lr", batch_field="batch_size"):
    """The chosen recipe with every explicitly given flag applied; --epochs, --lr and
    --batch-size set the named fields (those of the run's role)."""
    params = PARAMS[args.params]()
    for f in fields(params):
        value = getattr(args, f.name, None)
        if value is not None and f.name not in RUN_FLAGS:
            setattr(params, f.name, value)
    if args.epochs is not None:
        setattr(params, epochs_field, args.epochs)
    if args.lr is not None:
        setattr(params, lr_field, args.lr)
    if args.batch_size is not None:
        setattr(params, batch_field, args.batch_size)
    return params


def flag(name):
    """The command-line flag that sets a field (role fields are set by --epochs, --lr and
    --batch-size)."""
    return {"teacher_epochs": "--epochs", "distill_epochs": "--epochs", "distill_lr": "--lr",
            "distill_batch_size": "--batch-size"}.get(name, "--" + name.replace("_", "-"))


def check_params(p):
    """Return a one-line problem with the recipe, or None."""
    positive = ["epochs", "teacher_epochs", "distill_epochs", "batch_size", "distill_batch_size",
                "lr", "distill_lr", "lr_decay"]
    for name in positive:
        value = getattr(p, name)
        if not (math.isfinite(value) and value > 0):
            return f"{flag(name)} must be a positive number, got {value}"
    for name in ["momentum", "momentum_start", "dropout_input", "dropout_hidden"]:
        if not 0 <= getattr(p, name) < 1:
            return f"{flag(name)} must be in [0, 1), got {getattr(p, name)}"
    if p.optimizer not in ("sgd", "adamw"):
        return f"--optimizer must be 'sgd' or 'adamw', got {p.optimizer!r}"
    if not 0 <= p.ema < 1:
        return f"--ema must be in [0, 1), got {p.ema}"
    if p.lr_schedule not in SCHEDULES:
        return f"--lr-schedule must be one of {', '.join(SCHEDULES)}, got {p.lr_schedule!r}"
    for name in ["momentum_ramp_epochs", "jitter", "init_std", "max_norm", "distill_warmup_steps"]:
        if not (math.isfinite(getattr(p, name)) and getattr(p, name) >= 0):
            return f"{flag(name)} must be a finite number >= 0, got {getattr(p, name)}"
    if p.optimizer == "sgd" and p.nesterov and min(p.momentum, momentum_at(p, 0)) <= 0:
        return "--nesterov 1 needs a positive --momentum and --momentum-start"
    if p.optimizer == "sgd" and p.nesterov and p.dampening:
        return "--nesterov 1 needs --dampening 0 (PyTorch's SGD allows no damped Nesterov)"
    if not (math.isfinite(p.T) and p.T > 0):
        return f"--T must be a positive finite temperature, got {p.T}"
    if not 0 <= p.alpha <= 1:
        return f"--alpha must be in [0, 1], got {p.alpha}"
    return None


def warmup_length(warmup_steps, total_steps):
    """Optimizer steps of the linear warmup: as asked, but at most a quarter of the run, so a
    short demo still spends most of its steps at full rate."""
    return min(warmup_steps, total_steps // 4)


SCHEDULES = ("exp", "cosine", "constant")  # the lr_schedule values lr_at knows
COOLDOWN = 0.2  # the 'constant' schedule's linear decay to 0 takes this fraction of the run


def lr_at(p, lr, epoch, step, steps_per_epoch, epochs, warmup=0):
    """Learning rate of one optimizer step; `warmup` steps of linear rise first."""
    done = epoch + step / steps_per_epoch
    ramp = min(1.0, (epoch * steps_per_epoch + step + 1) / warmup) if warmup else 1.0
    if p.lr_schedule == "exp":
        return ramp * lr * p.lr_decay ** epoch
    if p.lr_schedule == "constant":
        return ramp * lr * min(1.0, (1.0 - done / epochs) / COOLDOWN)
    return ramp * lr * 0.5 * (1.0 + math.cos(math.pi * done / epochs))


def momentum_at(p, epoch):
    if p.momentum_ramp_epochs == 0:
        return p.momentum
    ramp = min(1.0, epoch / p.momentum_ramp_epochs)
    return p.momentum_start + ramp * (p.momentum - p.momentum_start)


def as_dict(p):
    return {"name": type(p).__name__, **asdict(p)}


# fields that took over what an older field held for students: a record or saved state
# written before `distill_batch_size` existed kept the student's minibatch in `batch_size`
FORMERLY = {"distill_batch_size": "batch_size"}


def recorded(saved, name, default=None):
    """Field `name` of a saved recipe (a dict); for one saved before the field existed, the
    value of the field it took over (FORMERLY), else `default`."""
    return saved[name] if name in saved else saved.get(FORMERLY.get(name), default)


STUDENT_ONLY = {"distill_epochs", "distill_lr", "distill_batch_size", "distill_warmup_steps",
                "T", "alpha", "teacher_dropout"}


def used_by(p, role):
    """as_dict(p) less the fields a run of `role` ('teacher', 'small', 'student') never reads."""
    unused = {"teacher": STUDENT_ONLY | {"epochs"}, "small": STUDENT_ONLY | {"teacher_epochs"},
              "student": {"teacher_epochs", "batch_size"}}[role]
    return {k: v for k, v in as_dict(p).items() if k not in unused}
