"""Distill a small net from a trained teacher (Hinton, Vinyals & Dean 2015, section 3).

    python distillation.py --T 20                  # 800-800 student at T = 20
    python distillation.py --T 1 2 4 8 20          # a temperature sweep, ending in a table

The student learns from the teacher's soft targets on the transfer set (the training images,
unjittered by default, so the teacher's logits are computed once) plus, with weight 1 - alpha,
the hard labels. It starts from the same weights as `train.py --model small` of the same seed.
"""
import dataclasses
import json
import os
import time

import torch
import torch.nn.functional as F

import checkpoint
import cli
import layers
import records
import train
import training_params as tp
from layers import describe

DEFAULT_TEACHER = os.path.join("models", "cumbersome_model_1200.pt")


def distillation_loss(student_logits, teacher_logits, labels, T, alpha):
    """alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) * CE(student, labels).

    KL is the true per-example divergence averaged over the batch ("batchmean"; "mean" would also
    divide by the number of classes). Its gradient shrinks as 1/T^2, which the T^2 undoes, so the
    soft and hard terms keep their relative weight at any T. alpha = 1: soft targets only."""
    log_q_student = F.log_softmax(student_logits / T, dim=1)
    log_q_teacher = F.log_softmax(teacher_logits / T, dim=1)
    soft = F.kl_div(log_q_student, log_q_teacher, reduction="batchmean", log_target=True)
    hard = F.cross_entropy(student_logits, labels)
    return alpha * T * T * soft + (1 - alpha) * hard


def soft_target_loss(T, alpha, teacher=None):
    """Batch loss for `train.fit`: cached teacher logits arrive as `extra`; with a jittered
    transfer set, pass the teacher to run it (eval mode, no gradients) on each shifted batch."""
    def batch_loss(net, images, labels, teacher_logits):
        if teacher is not None:
            with torch.no_grad():
                teacher_logits = teacher(images)
        return distillation_loss(net(images), teacher_logits, labels, T, alpha)
    return batch_loss


def distill(student, teacher, train_set, test_set, params, seed, *, jitter=0, epochs=None,
            max_steps=None, teacher_logits=None, checkpoints=None, val_set=None):
    """Train `student` on the teacher's soft targets at params.T with weight params.alpha for
    `epochs` (default params.distill_epochs); returns fit's output. Pass `teacher_logits` of
    the transfer images to reuse them."""
    images, labels = train_set
    teacher.eval().requires_grad_(False)
    cached = None
    if not jitter:
        cached = layers.logits_of(teacher, images) if teacher_logits is None else teacher_logits
    loss = soft_target_loss(params.T, params.alpha, teacher if jitter else None)
    return train.fit(student, [images, labels, cached], test_set, params,
                     epochs=epochs or params.distill_epochs, lr=params.distill_lr, seed=seed,
                     batch_loss=loss, jitter=jitter, max_steps=max_steps, checkpoints=checkpoints,
                     warmup_steps=params.distill_warmup_steps, val_set=val_set)


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
    parser.add_argument("--teacher", default=DEFAULT_TEACHER,
                        help="teacher checkpoint (default: %(default)s)")
    return parser


def parse_distill_args(parser, argv):
    """(args, one recipe per temperature), checked; the common --lr sets the distill_lr."""
    args = parser.parse_args(argv)
    temperatures = args.T if isinstance(args.T, list) else [args.T]
    args.T = None  # the recipe's T is set per run below
    params = tp.params_from_args(args, "distill_epochs", "distill_lr")
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
            f"--seed {seed} --out {path[:-5]}.pt")
    try:
        with open(path) as f:
            record = json.load(f)
        errors, epochs, its_seed, its_config = (record["test_errors"], record["epochs"],
                                                record["seed"], record["config"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, f"no results at {path}; {hint}"
    if describe(its_config) != describe(config):
        return None, f"{path} is a {describe(its_config)} net, not the student's; {hint}"
    return errors, f"hard labels, {epochs} epochs, seed {its_seed}"


def out_path(args, config, T, sweep):
    if args.out is None:
        return cli.default_out(args, "student", config, f"_{T:g}")
    return f"{args.out[:-3]}_T{T:g}.pt" if sweep else args.out


def finished_record(args, out):
    """The results of a run of a resumed sweep that had already finished, else None."""
    if not (args.resume and os.path.exists(cli.json_path_of(out))
            and not os.path.exists(checkpoint.resume_path(out))):
        return None
    with open(cli.json_path_of(out)) as f:
        return json.load(f)


@cli.report_errors
def main(argv=None):
    parser = make_distill_parser(__doc__)
    parser.add_argument("--baseline", help="results JSON of the hard-label small net to compare "
                        "with (default: models/small_model_W.json, W the student's width)")
    args, runs = parse_distill_args(parser, argv)
    device = cli.resolve_device(args.device)
    config = cli.net_config(args, runs[0], "student")
    outs = [out_path(args, config, run.T, len(runs) > 1) for run in runs]
    for out in outs:
        cli.check_writable(out)
    jitter = cli.regularizer(args, runs[0], "student", "jitter")
    teacher = checkpoint.load_net(args.teacher, device)
    train_set, val_set, test_set = cli.load_data(args, device)
    teacher_errors, _, _ = layers.evaluate(teacher, *test_set)
    data = checkpoint.fingerprint(*train_set)
    teacher_id = checkpoint.fingerprint(*teacher.state_dict().values())
    teacher_logits = None if jitter else layers.logits_of(teacher, train_set[0])
    baseline = args.baseline or os.path.join("models", f"small_model_{cli.width_name(config)}.json")
    baseline_errors, baseline_note = read_baseline(baseline, config, args.seed)
    rows = [(f"teacher {describe(teacher.config())}", teacher_errors, len(test_set[1]),
             args.teacher),
            (f"small {describe(config)}", baseline_errors, len(test_set[1]), baseline_note)]
    results = []
    for run, out in zip(runs, outs):
        record = finished_record(args, out)
        if record is None:
            record = distill_one(args, run, out, config, teacher, teacher_errors, teacher_logits,
                                 (train_set, val_set, test_set), device, jitter, data, teacher_id)
        else:
            print(f"--resume: {out} had finished; its results are kept")
        results.append(record)
        rows.append((f"distilled {record['architecture']} T={run.T:g}", record["test_errors"],
                     record["test_count"], f"alpha {run.alpha:g}, {record['epochs']} epochs"))
    records.print_summary(rows)
    return results


def distill_one(args, run, out, config, teacher, teacher_errors, teacher_logits, sets, device,
                jitter, data, teacher_id):
    """Train, save and return the record of one student of a (possibly one-T) sweep."""
    train_set, val_set, test_set = sets
    started = time.perf_counter()
    student = train.init_net(config, args.seed, device)
    print(f"student: {describe(student.config())} on {device}, T {run.T:g}, alpha "
          f"{run.alpha:g}, {len(train_set[1])} transfer images, jitter {jitter}, "
          f"teacher {args.teacher} ({teacher_errors} test errors), seed {args.seed}")
    checkpoints = checkpoint.checkpoints_of(args, out, "student", run, config, data,
                                            jitter=jitter, teacher=teacher_id)
    epochs, max_steps = cli.run_length(args, run.distill_epochs)
    history, timing = distill(student, teacher, train_set, test_set, run, args.seed,
                              jitter=jitter, epochs=epochs, max_steps=max_steps,
                              teacher_logits=teacher_logits, checkpoints=checkpoints,
                              val_set=val_set)
    record = records.run_record(args, run, "student", student, len(train_set[1]), test_set,
                                history, timing, time.perf_counter() - started, device,
                                val_set=val_set, T=run.T, alpha=run.alpha, jitter=jitter,
                                teacher=args.teacher, teacher_test_errors=teacher_errors)
    if not args.dry_run:
        print(f"wrote {out} and {checkpoint.save_run(out, student, record)}")
        checkpoints.finish()
    return record


if __name__ == "__main__":
    main()
