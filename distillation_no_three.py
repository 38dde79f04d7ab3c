"""Dark knowledge (Hinton, Vinyals & Dean 2015, section 3): a student that never sees a class.

    python distillation_no_three.py                 # transfer set without any 3 (--omit 3)
    python distillation_no_three.py --only 7 8      # transfer set of 7s and 8s only

The student is distilled from the full teacher (trained on all ten digits) on a transfer set with
the class(es) removed, so all it knows of them comes from the teacher's soft targets on other
digits. Its missing classes then lose only because their output biases are too low, which one
shift repairs: +3.5 on class 3 (--omit 3) or -7.6 on classes 7 and 8 (--only 7 8) in the paper,
chosen there on the test set. This script also chooses a shift without any test image (see
`frequency_matched_shift`) and, for comparison, trains a small net on hard labels with the same
classes removed. Writes the student, the baseline and each shifted copy as checkpoints + JSON.
--epochs, --lr and --batch-size set both runs, the student and the hard-label baseline.
"""
import copy
import math
import time

import torch

import checkpoint
import cli
import dataset
import distillation
import layers
import records
import train
from layers import describe

PAPER_SHIFT = {"omit": 3.5, "only": -7.6}


# ---------------------------------------------------------------------------- the bias shift
def shift_biases(net, classes, amount):
    """A copy of `net` whose output biases of `classes` are raised by `amount`; nothing else."""
    shifted = copy.deepcopy(net)
    with torch.no_grad():
        shifted.layers[-1].bias[list(classes)] += amount
    return shifted


def predicted_count(net, images, classes):
    """On how many of `images` the net's top class is one of `classes`."""
    classes = torch.as_tensor(list(classes), device=images.device)
    return torch.isin(layers.logits_of(net, images).argmax(1), classes).sum().item()


def frequency_matched_shift(student, images, classes, wanted, steps=60):
    """The bias shift of `classes` at which the student predicts them on `wanted` of `images`:
    as many as the teacher does (`predicted_count(teacher, ...)`). Needs no label and no test
    image: only unlabelled training images and the teacher, which has seen every class. A
    student whose missing classes score too low predicts them too rarely; matching the
    teacher's frequency is the classic prior correction for a shift in class frequencies.
    Returns the smallest such shift, found by bisection (the count only grows with the
    shift); 0 if the teacher predicts none of `classes`."""
    classes = torch.as_tensor(list(classes), device=images.device)
    logits = layers.logits_of(student, images)
    bump = torch.zeros(logits.shape[1], device=logits.device)
    bump[classes] = 1.0

    def count(shift):
        return torch.isin((logits + shift * bump).argmax(1), classes).sum().item()

    if wanted == 0:
        return 0.0
    low, high = -1.0, 1.0  # widen until count(low) < wanted <= count(high)
    while count(high) < wanted:
        high *= 2
    while count(low) >= wanted:
        low *= 2
    for _ in range(steps):
        middle = (low + high) / 2
        low, high = (low, middle) if count(middle) >= wanted else (middle, high)
    return high


# ---------------------------------------------------------------------------- the report
def missing_classes(args):
    every = range(dataset.DATASETS[args.dataset].classes)
    return sorted(set(args.omit)) if args.omit else sorted(set(every) - set(args.only))


def dark_knowledge_report(net, test_set, missing):
    """Test errors in all, on the missing classes, and what their missed images were taken for."""
    images, labels = test_set
    errors, per_class, predictions = layers.evaluate(net, images, labels)
    in_missing = torch.isin(labels, torch.as_tensor(missing, device=labels.device))
    missed = predictions[in_missing & (predictions != labels)]
    taken_for = torch.bincount(missed, minlength=net.classes).tolist()
    return {"test_errors": errors, "per_class_errors": per_class, "test_count": len(labels),
            "missing_class_errors": sum(per_class[c] for c in missing),
            "missing_class_count": int(in_missing.sum()),
            "missed_predicted_as": {str(c): n for c, n in enumerate(taken_for) if n}}


def variants(net, test_set, missing, shifted_classes, paper_shift, honest_shift):
    """(name, shift, net, report) for the net as trained, with the fixed and the honest shift."""
    rows = []
    for name, shift in [("as trained", 0.0), ("fixed shift", paper_shift),
                        ("frequency-matched shift", honest_shift)]:
        shifted = shift_biases(net, shifted_classes, shift) if shift else net
        rows.append((name, shift, shifted, dark_knowledge_report(shifted, test_set, missing)))
    return rows


def print_report(title, rows, missing):
    print(f"\n{title}")
    print(f"{'variant':<25} {'shift':>7} {'test errors':>11} {'error %':>8} "
          f"{'errors on ' + ','.join(map(str, missing)):>18}  missed ones taken for")
    for name, shift, _, r in rows:
        on_missing = f"{r['missing_class_errors']}/{r['missing_class_count']}"
        taken = " ".join(f"{c}:{n}" for c, n in sorted(r["missed_predicted_as"].items(),
                                                       key=lambda kv: -kv[1])[:5])
        print(f"{name:<25} {shift:>+7.2f} {r['test_errors']:>11} "
              f"{100 * r['test_errors'] / r['test_count']:>8.2f} "
              f"{on_missing:>18}  {taken}")


# ---------------------------------------------------------------------------- main
def make_parser():
    parser = distillation.make_distill_parser(__doc__, sweep=False)
    parser.add_argument("--bias-shift", type=float,
                        help="fixed shift of the shifted classes' output biases (default: the "
                             "paper's, +3.5 on the omitted class or -7.6 on the kept ones)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the small net trained on hard labels with the same classes removed")
    return parser


def parse_args(argv):
    args, runs = distillation.parse_distill_args(make_parser(), argv)
    if args.epochs is not None:  # --epochs is the length of both runs, student and baseline
        runs[0].epochs = args.epochs
    if args.batch_size is not None:  # ... --batch-size their minibatch
        runs[0].batch_size = args.batch_size
    if args.lr is not None:  # ... and --lr their peak learning rate
        runs[0].lr = args.lr
    if args.bias_shift is not None and not math.isfinite(args.bias_shift):
        raise cli.UsageError(f"--bias-shift must be a finite number, got {args.bias_shift}")
    if not args.omit and not args.only:
        args.omit = [3]
    if len(set(args.only)) == dataset.DATASETS[args.dataset].classes:
        raise cli.UsageError("--only keeps every class: no class is missing")
    return args, runs[0]


def experiment_name(args):
    """'wo3' or 'only78': a tag for file names and tables."""
    return (f"wo{''.join(map(str, sorted(set(args.omit))))}" if args.omit
            else f"only{''.join(map(str, sorted(set(args.only))))}")


def save_variant(out, net, record, name, shift, report):
    """The as-trained net at OUT.pt, shifted copies at OUT_shift.pt and OUT_autoshift.pt."""
    suffix = {"as trained": "", "fixed shift": "_shift", "frequency-matched shift": "_autoshift"}
    path = f"{out[:-3]}{suffix[name]}.pt"
    checkpoint.save_run(path, net, {**record, **report, "bias_shift": shift, "variant": name})
    return path


def train_nets(args, run, transfer, val_set, test_set, teacher, device, outs):
    """[(role, title, net, history, timing, wall_s, checkpoints)]: the student, then the
    hard-label baseline."""
    jitter = cli.regularizer(args, run, "student", "jitter")
    nets, saved = [], {}

    data = checkpoint.fingerprint(*transfer)
    teacher_id = checkpoint.fingerprint(*teacher.state_dict().values())

    def checkpoints(role, net):
        saved[role] = checkpoint.checkpoints_of(
            args, outs[role], role, run, net.config(), data, device, jitter=jitter,
            experiment=experiment_name(args),
            **({"teacher": teacher_id} if role == "student" else {}))
        return saved[role]

    started = time.perf_counter()
    student = train.init_net(cli.net_config(args, run, "student"), args.seed, device, args.precision)
    epochs, max_steps = cli.run_length(args, run.distill_epochs)
    history, timing = distillation.distill(student, teacher, transfer, test_set, run, args.seed,
                                           jitter=jitter, epochs=epochs, max_steps=max_steps,
                                           checkpoints=checkpoints("student", student),
                                           val_set=val_set, view_cache_mb=args.view_cache_mb)
    nets.append(("student", f"distilled {describe(student.config())} (T={run.T:g}, "
                 f"alpha={run.alpha:g})", student, history, timing, time.perf_counter() - started,
                 saved["student"]))
    if not args.no_baseline:
        started = time.perf_counter()
        small = train.init_net(cli.net_config(args, run, "small"), args.seed, device, args.precision)
        epochs, max_steps = cli.run_length(args, run.epochs)
        history, timing = train.fit(small, [*transfer, None], test_set, run, epochs=epochs,
                                    lr=run.lr, seed=args.seed, batch_loss=train.hard_label_loss,
                                    jitter=jitter, max_steps=max_steps,
                                    checkpoints=checkpoints("small", small), val_set=val_set)
        nets.append(("small", f"small {describe(small.config())} (hard labels)", small, history,
                     timing, time.perf_counter() - started, saved["small"]))
    return nets


@records.report_errors
def main(argv=None):
    args, run = parse_args(argv)
    device = cli.resolve_device(args.device)
    name = experiment_name(args)
    student_out = args.out or cli.default_out(
        args, "student", cli.net_config(args, run, "student"), f"_{run.T:g}", tag=name)
    baseline_out = (f"{args.out[:-3]}_baseline.pt" if args.out else  # beside the student
                    cli.default_out(args, "small", cli.net_config(args, run, "small"), tag=name))
    outs = {"student": student_out, "small": baseline_out}
    for role, path in outs.items():
        if role == "student" or not args.no_baseline:
            checkpoint.check_output(args, path)
    cli.precision_note(args.precision, device)
    teacher = layers.set_precision(checkpoint.load_net(args.teacher, device, args.dataset),
                                   args.precision)
    records.note_unpaired(args.teacher, args.seed)
    all_train, val_set, test_set = cli.load_data(args, device, all_classes=True)
    transfer = cli.kept_classes(args, all_train)
    missing, shifted_classes = missing_classes(args), sorted(set(args.omit or args.only))
    fixed_shift = args.bias_shift if args.bias_shift is not None else \
        PAPER_SHIFT["omit" if args.omit else "only"]
    kept = sorted(set(transfer[1].tolist()))
    print(f"{name}: transfer set of {len(transfer[1])} training images of classes {kept}; "
          f"teacher {args.teacher}; seed {args.seed}")

    teacher_count = predicted_count(teacher, all_train[0], shifted_classes)
    results = []
    trained = train_nets(args, run, transfer, val_set, test_set, teacher, device, outs)
    for role, title, net, history, timing, wall_s, saved in trained:
        honest = frequency_matched_shift(net, all_train[0], shifted_classes, teacher_count)
        rows = variants(net, test_set, missing, shifted_classes, fixed_shift, honest)
        print_report(f"{title}, trained on classes {kept} only", rows, missing)
        record = records.run_record(
            args, run, role, net, len(transfer[1]), test_set, history, timing, wall_s, device,
            val_set=val_set, experiment=name, missing_classes=missing, shifted_classes=shifted_classes,
            fixed_shift=fixed_shift, frequency_matched_shift=honest,
            variants={n: {"bias_shift": s, **r} for n, s, _, r in rows},
            jitter=cli.regularizer(args, run, role, "jitter"),
            **({"T": run.T, "alpha": run.alpha, "teacher": args.teacher,
                "teacher_run": records.teacher_run(args.teacher)} if role == "student" else {}))
        if not args.dry_run:
            for variant, shift, shifted, report in rows:
                print(f"wrote {save_variant(outs[role], shifted, record, variant, shift, report)}")
            saved.finish()
        results.append(record)
    if args.dry_run:
        print("dry run: nothing written")
    return results


if __name__ == "__main__":
    main()
