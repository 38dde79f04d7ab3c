"""Distill a small net from a trained teacher (Hinton, Vinyals & Dean 2015, section 3).

    python distillation.py --T 20                  # 800-800 student at T = 20
    python distillation.py --T 1 2 4 8 20          # a temperature sweep, ending in a table
    python distillation.py --teacher T.pt --arch cnn --channels 8 16 --hint-weight 1   # + a hint
    python distillation.py --T 4 --method dkd      # decoupled KD (Zhao et al. 2022) instead of KD

The student learns from the teacher's soft targets on the transfer set (the training images,
unjittered by default, so the teacher's logits are computed once) plus, with weight 1 - alpha,
the hard labels. It starts from the same weights as `train.py --model small` of the same seed.
Teacher and student may be of any architecture (--arch of the student; the teacher's is in its
checkpoint); --method picks the logit loss (losses.py); --hint-weight adds a hint term (see
hints.py).
"""
import dataclasses
import json
import math
import os
import time

import torch
from dataclasses import astuple

import checkpoint
import cli
import dataset
import hints
import layers
import losses
import records
import train
import training_params as tp
from layers import describe

DKD_DEFAULTS = {"dkd_alpha": 1.0, "dkd_beta": 8.0}  # mdistiller's (the DKD authors' code) CIFAR-100 ones


def logit_loss(T, alpha, method="kd", **weights):
    """(student_logits, teacher_logits, labels) -> the batch loss of `method` (losses.METHODS)
    at temperature T and soft-term weight alpha; `weights`: DKD's dkd_alpha and dkd_beta."""
    loss = losses.METHODS[method]
    return lambda student_logits, teacher_logits, labels: loss(
        student_logits, teacher_logits, labels, T, alpha, **weights)


def soft_target_loss(T, alpha, teacher=None, sample=False, loss=None):
    """Batch loss for `train.fit`: cached teacher logits arrive as `extra`; with a jittered
    transfer set, pass the teacher to run it (no gradients) on each shifted batch; `sample`:
    with its dropout on, so each batch is taught by another member of its dropout ensemble.
    `loss`: the logit loss (of `logit_loss`; default: distillation_loss at T and alpha)."""
    loss = loss or logit_loss(T, alpha)
    def batch_loss(net, images, labels, teacher_logits):
        if teacher is not None:
            with torch.no_grad():
                teacher.train(sample)
                teacher_logits = teacher(images)
                teacher.eval()
        return loss(net(images), teacher_logits, labels)
    return batch_loss


def teacher_targets(teacher, images, jitter, flip, epochs, cache_mb=cli.VIEW_CACHE_MB):
    """The teacher's logits the student learns from, computed once: (N, classes) for an
    unaugmented transfer set; (N, views, classes) of every shifted and flipped view for an
    augmented one (the consistent teacher at the cost of an unjittered epoch: `train.fit`
    gives each image the logits of its own view); None when the teacher must run live on each
    batch, because the views would take more than `cache_mb` MB or more teacher passes over
    the data than the run's `epochs`."""
    if not (jitter or flip):
        return layers.logits_of(teacher, images)
    views = dataset.view_count(jitter, flip)
    megabytes = views * len(images) * teacher.classes * 4 / 2 ** 20
    if megabytes > cache_mb or views > epochs:
        print(f"teacher runs live on each shifted batch: its {views} views would take "
              f"{megabytes:.0f} MB (--view-cache-mb {cache_mb:g}) and {views} passes over the "
              f"data against the run's {epochs} epochs")
        return None
    tick = time.perf_counter()
    cache = torch.stack([layers.logits_of(teacher, dataset.view_of(images, v, jitter))
                         for v in range(views)], dim=1)
    print(f"teacher targets cached: {views} views x {len(images)} images ({megabytes:.0f} MB, "
          f"{time.perf_counter() - tick:.1f} s)")
    return cache


def distill(student, teacher, train_set, test_set, params, seed, *, jitter=0, flip=False,
            epochs=None, max_steps=None, teacher_logits=None, checkpoints=None, val_set=None,
            hint=None, view_cache_mb=cli.VIEW_CACHE_MB, loss=None):
    """Train `student` on the teacher's soft targets at params.T with weight params.alpha for
    `epochs` (default params.distill_epochs); returns fit's output. Pass `teacher_logits`
    (of `teacher_targets`) to reuse them. `hint` (a hints.Hint): a one-stage run adds the hint
    term; the second of two stages is plain distillation (see `hint_first_stage`). `loss`: the
    logit loss (of `logit_loss`; default: distillation_loss, KD)."""
    images, labels = train_set
    teacher.eval().requires_grad_(False)
    epochs = epochs or params.distill_epochs
    net, cached = student, None
    loss_of_logits = loss or logit_loss(params.T, params.alpha)
    suspect = "--lr"  # what a run that never learns names as the likely cause
    if hint is not None and hint.stages == 1:
        net = hints.Hinted(student, hints.regressor_of(student, teacher, hint, images.device))
        loss = hints.one_stage_loss(teacher, hint, loss_of_logits)
        suspect = f"--hint-weight {hint.weight:g} (or --lr)"
    else:
        cached = teacher_logits
        if cached is None and not params.teacher_dropout:
            cached = teacher_targets(teacher, images, jitter, flip, epochs, view_cache_mb)
        live = cached is None  # the teacher runs on each batch
        loss = soft_target_loss(params.T, params.alpha, teacher if live else None,
                                params.teacher_dropout, loss_of_logits)
    return train.fit(net, [images, labels, cached], test_set, params,
                     epochs=epochs, lr=params.distill_lr, seed=seed,
                     batch_loss=loss, jitter=jitter, flip=flip, max_steps=max_steps,
                     checkpoints=checkpoints, warmup_steps=params.distill_warmup_steps,
                     val_set=val_set, batch_size=params.distill_batch_size, suspect=suspect)


def hint_first_stage(student, teacher, train_set, test_set, params, seed, hint, *, jitter=0,
                     flip=False, epochs=None, max_steps=None, checkpoints=None, val_set=None):
    """The first of two stages: the student's layers up to hint.student_layer (and the
    regressor, then dropped) learn the hint loss alone, unweighted, for hint.epochs; the rest
    stays as it was."""
    teacher.eval().requires_grad_(False)
    hinted = hints.Hinted(student, hints.regressor_of(student, teacher, hint, train_set[0].device))
    frozen = hints.freeze_above(student, hint.student_layer)
    try:
        return train.fit(hinted, [*train_set, None], test_set, params, epochs=epochs or hint.epochs,
                         lr=params.distill_lr, seed=seed, batch_loss=hints.first_stage_loss(
                             teacher, hint), jitter=jitter, flip=flip, max_steps=max_steps,
                         checkpoints=checkpoints, warmup_steps=params.distill_warmup_steps,
                         val_set=val_set, batch_size=params.distill_batch_size,
                         suspect=None)  # its output layer stays untrained: errors near chance
    finally:
        for p in frozen:
            p.requires_grad_(True)


def first_stage_of(lesson, run, out, student, more):
    """Run the first of two hint stages of the student (a Lesson's, recipe `run`,
    output `out`; `more`: its checkpoint identity) (skipped when resuming a second stage, whose
    saved state holds its result); returns its history."""
    args, config, teacher, hint = lesson.args, lesson.config, lesson.teacher, lesson.hint
    (train_set, val_set, test_set), (jitter, flip) = lesson.sets, lesson.augment
    kept = f"{out[:-3]}_stage1.json"  # the finished first stage's history, for a resume
    if args.resume and os.path.exists(checkpoint.resume_path(out)) and os.path.exists(kept):
        with open(kept) as f:
            return json.load(f)
    print(f"first stage: the hint alone, {hint.epochs} epochs, layers up to "
          f"{hint.student_layer} (the output layer is untrained until the second stage: "
          "its test errors stay near chance)")
    stage_out = f"{out[:-3]}_stage1.pt"
    checkpoints = checkpoint.checkpoints_of(args, stage_out, "student", run, config, lesson.data,
                                            lesson.device, **more)
    epochs, max_steps = cli.run_length(args, hint.epochs)
    history, _ = hint_first_stage(student, teacher, train_set, test_set, run, args.seed, hint,
                                  jitter=jitter, flip=flip, epochs=epochs, max_steps=max_steps,
                                  checkpoints=checkpoints, val_set=val_set)
    if checkpoints:
        checkpoints.finish()
        checkpoint.write_atomic({kept: lambda f: f.write(json.dumps(history).encode())})
    print("second stage: plain distillation of the whole student")
    return history


def make_distill_parser(doc, sweep=True):
    """The shared flags plus the student's; `sweep`: --T takes several temperatures."""
    parser = cli.make_parser(doc)
    local = tp.LocalParams()
    if sweep:
        parser.add_argument("--T", type=float, nargs="+", metavar="T",
                            help=f"temperature(s); several run a sweep, one student each "
                                 f"(default: the recipe's, {local.T:g})")
    else:
        parser.add_argument("--T", type=float, metavar="T",
                            help=f"temperature (default: the recipe's, {local.T:g})")
    parser.add_argument("--alpha", type=float,
                        help=f"weight of the soft term (default: the recipe's, {local.alpha:g})")
    parser.add_argument("--teacher", default=cli.DEFAULT_TEACHER,
                        help="teacher checkpoint (default: %(default)s)")
    return parser


def parse_distill_args(parser, argv):
    """(args, one recipe per temperature), checked; the common --epochs, --lr and --batch-size
    set the student's distill_* fields."""
    args = parser.parse_args(argv)
    temperatures = args.T if isinstance(args.T, list) else [args.T]
    args.T = None  # the recipe's T is set per run below
    params = tp.params_from_args(args, "distill_epochs", "distill_lr", "distill_batch_size")
    temperatures = [params.T if T is None else T for T in temperatures]
    if len(set(f"{T:g}" for T in temperatures)) < len(temperatures):
        raise cli.UsageError(f"--T lists a temperature twice: {temperatures}")
    runs = [dataclasses.replace(params, T=T) for T in temperatures]
    for run in runs:
        cli.check_common(args, run)
    return args, runs


def read_baseline(path, config, seed):
    """(test errors, note) of the hard-label small net's results JSON at `path`, if it is a
    net of the student's architecture; else (None, the command that trains one)."""
    widths = config["hidden"]
    hint = (f"run: python train.py --model small --hidden {' '.join(map(str, widths))} "
            f"--seed {seed} --out {path[:-5]}.pt" if config.get("arch", "mlp") == "mlp" else
            "run train.py --model small with the student's --arch, net and --dataset flags")
    try:
        with open(path) as f:
            record = json.load(f)
        errors, epochs, its_seed, its_config = (record["test_errors"], record["epochs"],
                                                record["seed"], record["config"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, f"no results at {path}; {hint}"
    if describe(its_config) != describe(config):
        return None, f"{path} is a {describe(its_config)} net, not the student's; {hint}"
    return errors, f"hard labels, {records.count(epochs, 'epoch')}, seed {its_seed}"


def out_path(args, config, T, sweep, hint=None):
    if args.out is None:
        tag = "" if hint is None else f"_hint{hint.weight:g}{'x2' if hint.stages == 2 else ''}"
        method = "" if getattr(args, "method", "kd") == "kd" else f"_{args.method}"
        return cli.default_out(args, "student", config, f"_{T:g}{method}{tag}")
    return f"{args.out[:-3]}_T{T:g}.pt" if sweep else args.out


def finished_record(args, out):
    """The results of a run of a resumed sweep that had already finished, else None."""
    if not (args.resume and os.path.exists(checkpoint.json_path_of(out))
            and not os.path.exists(checkpoint.resume_path(out))):
        return None
    with open(checkpoint.json_path_of(out)) as f:
        return json.load(f)


def add_method_flags(parser):
    group = parser.add_argument_group("the logit loss (see losses.py)")
    group.add_argument("--method", choices=sorted(losses.METHODS), default="kd",
                       help="kd: Hinton et al.'s distillation loss; dkd: decoupled KD (Zhao et al. "
                            "2022), its target and non-target parts weighted by --dkd-alpha and "
                            "--dkd-beta; either way --alpha weighs the soft term against the "
                            "hard labels (default: %(default)s)")
    group.add_argument("--dkd-alpha", type=float, metavar="A",
                       help=f"--method dkd: weight of the target-class part, TCKD (default: "
                            f"{DKD_DEFAULTS['dkd_alpha']:g}, mdistiller's, the DKD authors' "
                            "code, for CIFAR-100)")
    group.add_argument("--dkd-beta", type=float, metavar="B",
                       help=f"--method dkd: weight of the non-target part, NCKD (default: "
                            f"{DKD_DEFAULTS['dkd_beta']:g}, mdistiller's for CIFAR-100; not tuned "
                            "on MNIST)")


def method_of(args):
    """(method, its loss weights {dkd_alpha, dkd_beta} or {}), checked."""
    given = {name: getattr(args, name) for name in DKD_DEFAULTS if getattr(args, name) is not None}
    if args.method != "dkd":
        if given:
            raise cli.UsageError("--dkd-alpha and --dkd-beta are the weights of --method dkd")
        return args.method, {}
    for name, value in given.items():
        if not (math.isfinite(value) and value >= 0):
            raise cli.UsageError(f"--{name.replace('_', '-')} must be a finite number >= 0, "
                                 f"got {value}")
    return args.method, {**DKD_DEFAULTS, **given}


def check_teacher_dropout(run, teacher, hint):
    """--teacher-dropout 1 needs a teacher with dropout and without batch norm (whose running
    statistics training mode would change), and no hint (whose teacher features are fixed)."""
    if not run.teacher_dropout:
        return
    config = teacher.config()
    if not (config.get("dropout_input") or config.get("dropout_hidden")):
        raise cli.UsageError("--teacher-dropout 1: the teacher has no dropout to sample")
    if config.get("batch_norm"):
        raise cli.UsageError("--teacher-dropout 1 needs a teacher without batch norm")
    if hint is not None:
        raise cli.UsageError("--teacher-dropout 1 cannot be combined with a hint")


def baseline_row(args, config, test_count):
    """The summary row of the hard-label net of the student's architecture, if known."""
    dataset = "" if args.dataset == "mnist" else f"_{args.dataset}"
    path = args.baseline or os.path.join(  # the shipped one
        "models", f"{cli.FILE_PREFIX['small']}{dataset}_{cli.width_name(config)}.json")
    errors, note = read_baseline(path, config, args.seed)
    return (f"small {describe(config)}", errors, test_count, note)


@dataclasses.dataclass(frozen=True)
class Lesson:
    """What every student of one distillation.py call shares: the command line, the student's
    net config, the teacher and what is known of it, the data and its augmentation, the hint
    and the logit loss. `distill_one` trains one student (one temperature) from it."""
    args: object                  # the parsed command line
    config: dict                  # the student's net
    teacher: torch.nn.Module
    teacher_errors: int           # on the test set, for the progress header and the record
    teacher_logits: object        # (N, classes) computed once for an unaugmented sweep, or None
    sets: tuple                   # (train, val, test), each (images, labels); val may be None
    device: torch.device
    augment: tuple                # (max shift in px, flip)
    data: str                     # fingerprint of the training set (a resume's identity)
    teacher_id: str               # fingerprint of the teacher's weights (ditto)
    hint: object = None           # a hints.Hint, or None
    method: tuple = ("kd", {})    # (losses.METHODS' name, its weights)


def distill_one(lesson, run, out):
    """Train, save and return the record of one student (recipe `run`, output `out`) of a
    possibly one-T sweep."""
    args, config, teacher, hint = lesson.args, lesson.config, lesson.teacher, lesson.hint
    (train_set, val_set, test_set), (jitter, flip) = lesson.sets, lesson.augment
    (name, weights), device, teacher_errors = lesson.method, lesson.device, lesson.teacher_errors
    started = time.perf_counter()
    student = train.init_net(config, args.seed, device, args.precision)
    print(f"student: {describe(student.config())} on {device}, T {run.T:g}, alpha "
          f"{run.alpha:g}, {len(train_set[1])} transfer images, jitter {jitter}, "
          f"teacher {args.teacher} ({teacher_errors} test errors), seed {args.seed}"
          + (f", hint {hint.student_layer}->{hint.teacher_layer} x{hint.weight:g}"
             f"{f', first stage {hint.epochs} epochs' if hint.stages == 2 else ''}" if hint else "")
          + (f", DKD: TCKD x{weights['dkd_alpha']:g}, NCKD x{weights['dkd_beta']:g}"
             if name == "dkd" else ""))
    more = {"jitter": jitter, "teacher": lesson.teacher_id, **({"flip": flip} if flip else {}),
            **({"hint": list(astuple(hint)), "hint_version": hints.HINT_VERSION} if hint else {}),
            **({"method": name, **weights} if name != "kd" else {})}  # a KD run's as before
    epochs, max_steps = cli.run_length(args, run.distill_epochs)
    checkpoints = checkpoint.checkpoints_of(args, out, "student", run, config, lesson.data, device,
                                            **more)
    first_stage = None
    if hint is not None and hint.stages == 2:
        first_stage = first_stage_of(lesson, run, out, student, more)
    history, timing = distill(student, teacher, train_set, test_set, run, args.seed,
                              jitter=jitter, flip=flip, epochs=epochs, max_steps=max_steps,
                              teacher_logits=lesson.teacher_logits, checkpoints=checkpoints,
                              view_cache_mb=args.view_cache_mb,
                              val_set=val_set, hint=hint,
                              loss=logit_loss(run.T, run.alpha, name, **weights))
    hinted = {} if hint is None else {
        "hint_weight": hint.weight, "hint_layers": [hint.student_layer, hint.teacher_layer],
        "hint_stages": hint.stages, "hint_epochs": hint.epochs, "hint_version": hints.HINT_VERSION,
        **({"first_stage_history": first_stage} if first_stage is not None else {})}
    record = records.run_record(args, run, "student", student, len(train_set[1]), test_set,
                                history, timing, time.perf_counter() - started, device,
                                val_set=val_set, T=run.T, alpha=run.alpha, jitter=jitter,
                                flip=flip, teacher=args.teacher, teacher_test_errors=teacher_errors,
                                teacher_run=records.teacher_run(args.teacher),
                                teacher_architecture=describe(teacher.config()), method=name,
                                **weights, **hinted)
    if not args.dry_run:
        print(f"wrote {out} and {checkpoint.save_run(out, student, record)}")
        checkpoints.finish()
        if os.path.exists(f"{out[:-3]}_stage1.json"):  # now inside the results JSON
            os.remove(f"{out[:-3]}_stage1.json")
    return record


@records.report_errors
def main(argv=None):
    parser = make_distill_parser(__doc__)
    parser.add_argument("--baseline", help="results JSON of the hard-label small net to compare "
                        "with (default: the shipped one of the student's net and dataset, "
                        "models/small_model[_DATASET]_NET.json)")
    add_method_flags(parser)
    hints.add_hint_flags(parser)
    args, runs = parse_distill_args(parser, argv)
    method, weights = method_of(args)
    device = cli.resolve_device(args.device)
    config = cli.net_config(args, runs[0], "student")
    cli.precision_note(args.precision, device)
    teacher = layers.set_precision(checkpoint.load_net(args.teacher, device, args.dataset),
                                   args.precision)
    records.note_unpaired(args.teacher, args.seed)
    hint = hints.hint_of(args, config, teacher, runs[0].distill_epochs)
    check_teacher_dropout(runs[0], teacher, hint)
    outs = [out_path(args, config, run.T, len(runs) > 1, hint) for run in runs]
    for out in outs:
        checkpoint.check_output(args, out)
    jitter, flip = cli.augmentation(args, runs[0], "student")
    train_set, val_set, test_set = cli.load_data(args, device)
    teacher_errors, _, _ = layers.evaluate(teacher, *test_set)
    data = checkpoint.fingerprint(*train_set)
    teacher_id = checkpoint.fingerprint(*teacher.state_dict().values())
    teacher_logits = (None if jitter or flip or hint or runs[0].teacher_dropout else
                      layers.logits_of(teacher, train_set[0]))  # one pass for a whole sweep
    rows = [(f"teacher {describe(teacher.config())}", teacher_errors, len(test_set[1]),
             args.teacher), baseline_row(args, config, len(test_set[1]))]
    lesson = Lesson(args, config, teacher, teacher_errors, teacher_logits,
                    (train_set, val_set, test_set), device, (jitter, flip), data, teacher_id,
                    hint, (method, weights))
    results = []
    for run, out in zip(runs, outs):
        record = finished_record(args, out)
        if record is None:
            record = distill_one(lesson, run, out)
        else:
            print(f"--resume: {out} had finished; its results are kept")
        results.append(record)
        rows.append((f"distilled {record['architecture']} T={run.T:g}", record["test_errors"],
                     record["test_count"], f"alpha {run.alpha:g}, {records.count(record['epochs'], 'epoch')}"
                     + (f", DKD {weights['dkd_alpha']:g}/{weights['dkd_beta']:g}" if weights else "")
                     + (f", hint {hint.weight:g}" if hint else "")))
    records.print_summary(rows)
    return results


if __name__ == "__main__":
    main()
