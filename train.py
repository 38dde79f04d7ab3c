"""Train a net on hard labels, and the training loop every script uses.

    python train.py --model teacher                 # 784-1200-1200-10, dropout, max-norm, jitter
    python train.py --model small --hidden 800      # 784-800-800-10, no regularization
    python train.py --model teacher --arch cnn --dataset fashion-mnist   # conv 32@5x5, pool, FC 128

Writes OUT.pt (state_dict + config) and OUT.json (results) atomically; see `fit` for the loop.
"""
import copy
import math
import time

import torch
import torch.nn.functional as F

import checkpoint
import cli
import dataset
import layers
import records
import training_params as tp
from errors import Diverged, Interrupted, NeverLearned
from checkpoint import Progress, interrupt_after_step
from layers import build, describe, evaluate
from records import format_seconds


def init_net(config, seed, device, precision="fp32"):
    """A fresh net whose initial weights depend on the config and seed only, so the small net
    and the distilled student of one seed start from identical weights."""
    torch.manual_seed(seed)
    return layers.set_precision(build(config).to(device), precision)


def hard_label_loss(net, images, labels, _extra):
    return F.cross_entropy(net(images), labels)


def make_optimizer(net, params, lr):
    if params.optimizer == "adamw":  # no weight decay: the paper's student has no regularizer
        return torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    momentum = tp.momentum_at(params, 0)
    # fused: one pass over each weight, gradient and momentum buffer instead of several
    return torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, nesterov=params.nesterov,
                           dampening=momentum if params.dampening else 0.0, fused=True)


def set_momentum(optimizer, params, epoch):
    if params.optimizer != "sgd":
        return
    momentum = tp.momentum_at(params, epoch)
    for group in optimizer.param_groups:
        group["momentum"] = momentum
        group["dampening"] = momentum if params.dampening else 0.0


def fit(net, train_set, test_set, params, *, epochs, lr, seed, batch_loss, jitter=0, flip=False,
        max_steps=None, checkpoints=None, warmup_steps=0, val_set=None, batch_size=None,
        suspect="--lr"):
    """Train `net` for `epochs` epochs at peak rate `lr` in minibatches of `batch_size`
    (default params.batch_size); returns (history, timing).

    train_set = [images, labels, extra]: `extra` is a per-example tensor shuffled and batched
    along with the images (the teacher's cached logits of a distillation, (N, classes), or of
    every augmented view, (N, views, classes)), or None.
    `batch_loss(net, images, labels, extra)` gives the loss of one batch. One progress line per
    epoch; the test set (and the held-out `val_set`, if any) is evaluated after each epoch. With
    `checkpoints` (a Checkpoints), the full training state is saved every few epochs and on a
    first Ctrl-C, and a resumed run continues bit for bit where it stopped.
    `warmup_steps`: optimizer steps of linear lr rise (at most a quarter of the run).
    `jitter`, `flip`: each epoch's images shifted by up to `jitter` px (and half of them
    mirrored), see `dataset.augment`. A fresh run that never learns stops (NeverLearned, see
    `never_learned`) naming `suspect` as the likely cause; None: no such check (a stage that
    leaves the output layer untrained). With `params.ema` the averaged net is evaluated and
    returned; each epoch also records the raw net's `raw_test_errors` (`raw_val_errors`), which
    are exactly those of the same run without averaging (averaging never touches training)."""
    # denormal floats (a decaying momentum buffer whose weight gets no gradient) cost ~100x a
    # normal one on x86 CPUs; flushed to 0, the reference runs stay bit for bit the same
    torch.set_flush_denormal(True)
    optimizer = make_optimizer(net, params, lr)
    generator = torch.Generator().manual_seed(dataset.data_seed(seed))
    n, bs = len(train_set[1]), batch_size or params.batch_size
    steps = math.ceil(n / bs) if max_steps is None else min(max_steps, math.ceil(n / bs))
    warmup = tp.warmup_length(warmup_steps, steps * epochs)
    average = copy.deepcopy(net) if params.ema else None
    weights = net if average is None else torch.nn.ModuleList([net, average])  # what a resume restores
    run = ((checkpoints and checkpoints.load(weights, optimizer, generator, epochs))
           or Progress(epochs, loss_total=torch.zeros((), device=train_set[1].device)))
    watched_set = val_set or test_set  # held-out images if any: what the checks read
    untrained = (kept_errors(net, watched_set, train_set[1])[0]  # raw net: an average lags
                 if suspect and run.epoch == run.step == 0 and max_steps is None  # not a dry run
                 and len(watched_set[1]) >= MIN_WATCHED else None)
    with interrupt_after_step() as interrupted:
        for epoch in range(run.epoch, epochs):
            tick, epoch_rng = time.perf_counter(), generator.get_state()  # a resume redoes the
            net.train()                                                 # epoch's shuffle, jitter
            set_momentum(optimizer, params, epoch)
            for step, (x, y, e) in enumerate(epoch_batches(train_set, generator, bs, jitter, flip)):
                if step == steps:
                    break
                if step < run.step:
                    continue
                for group in optimizer.param_groups:
                    group["lr"] = tp.lr_at(params, lr, epoch, step, steps, epochs, warmup)
                run.add(train_step(net, optimizer, batch_loss, x, y, e), len(y))
                if suspect and epoch == 0 and step + 1 == min(steps, DEAD_CHECK_STEP):
                    stop_if_dead(net, x, step + 1, suspect)
                if average is not None:
                    update_average(average, net, params.ema)
                if interrupted():
                    stop(checkpoints, weights, optimizer, epoch_rng, run.at(epoch, step + 1), tick)
            entry = evaluated({"epoch": epoch + 1, "loss": run.at(epoch, 0).close_epoch(
                tick, min(n, steps * bs))}, net if average is None else average, net, test_set, val_set)
            check_epoch(run.history, entry, watched_set, checkpoints)
            if untrained is not None and epoch == 0:
                stop_if_never_learned(net, watched_set, train_set[1], suspect, untrained)
            run.history.append(entry)
            print(progress_line(entry, epochs, len(test_set[1]), (epoch + 1) * min(n, steps * bs)
                                / run.train_s, run.eta(steps, epochs - epoch - 1)), flush=True)
            if checkpoints and checkpoints.due(epoch + 1):
                checkpoints.save(weights, optimizer, generator.get_state(), run.at(epoch + 1, 0))
    if average is not None:
        net.load_state_dict(average.state_dict())  # the run's result is the averaged net
    trained = len(run.history) * min(n, steps * bs)
    return run.history, {"train_s": run.train_s, "samples_per_s": trained / run.train_s
                         if run.train_s else 0.0, "wall_s_before_resume": run.wall_before}


def epoch_batches(train_set, generator, batch_size, jitter, flip):
    """The epoch's minibatches [images, labels, extra]: a fresh random order, then each image
    augmented (see `augment_with_targets`)."""
    order = dataset.permutation(len(train_set[1]), generator, train_set[1].device)
    images, extra = augment_with_targets(train_set[0], train_set[2], order, generator, jitter, flip)
    return dataset.batches([images, train_set[1][order], extra], batch_size)


def train_step(net, optimizer, batch_loss, images, labels, extra):
    """One optimizer step on one batch, then the max-norm constraint; returns the batch loss."""
    loss = batch_loss(net, images, labels, extra)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    net.apply_max_norm()
    return loss


def stop(checkpoints, weights, optimizer, epoch_rng, run, tick):
    """A Ctrl-C after a step: save the state (if its loss is finite) and say how to resume."""
    if not (checkpoints and torch.isfinite(run.loss_total)):
        raise KeyboardInterrupt
    run.train_s += time.perf_counter() - tick
    checkpoints.save(weights, optimizer, epoch_rng, run)
    raise Interrupted(run.epoch + 1, run.step, checkpoints.path)


def evaluated(entry, watched, net, test_set, val_set):
    """The epoch's `entry` with its test (and held-out) errors: of the averaged net, and of the
    raw one too if averaging (one run measures what averaging adds); none after a NaN loss."""
    if not math.isfinite(entry["loss"]):
        return entry
    sets = {"test_errors": test_set, **({"val_errors": val_set} if val_set is not None else {})}
    entry.update({key: evaluate(watched, *data)[0] for key, data in sets.items()})
    if watched is not net:
        entry.update({f"raw_{key}": evaluate(net, *data)[0] for key, data in sets.items()})
    return entry


def check_epoch(history, entry, watched_set, checkpoints):
    problem = blow_up(history, entry, len(watched_set[1]))
    if problem:
        raise Diverged(f"{problem} in epoch {entry['epoch']}"
                       f"{checkpoints.last_good() if checkpoints else ''}; "
                       "start again with a lower --lr")


def progress_line(entry, epochs, test_count, samples_per_s, eta):
    val = f" | val errors {entry['val_errors']:5d}" if "val_errors" in entry else ""
    return (f"epoch {entry['epoch']:4d}/{epochs} | loss {entry['loss']:.4f}{val} | test errors "
            f"{entry['test_errors']:5d} ({100 * entry['test_errors'] / test_count:.2f}%) | "
            f"{samples_per_s:7.0f} samples/s | ETA {format_seconds(eta)}")


def augment_with_targets(images, extra, order, generator, jitter, flip):
    """The epoch's augmented `images`, in the epoch's `order`, and their per-example `extra` in
    that order: a per-view cache (N, views, classes) of teacher logits gives each image the
    logits of the very view it got (looked up, not shuffled whole)."""
    if extra is None or extra.dim() != 3:
        return (dataset.augment(images, generator, jitter, flip, order=order),
                None if extra is None else extra[order])
    images, views = dataset.augment(images, generator, jitter, flip, views=True, order=order)
    return images, extra[order, views]


@torch.no_grad()
def update_average(average, net, decay):
    """Exponential moving average of the weights, after each step: a = decay a + (1 - decay) w.
    Evaluated and saved in place of the last weights (a training trick, not another model).
    Batch norm's running statistics are averaged alike: the net's own last ones belong to its
    last weights, not to the average (counters, integers, are copied)."""
    for a, w in zip(average.parameters(), net.parameters()):
        a.lerp_(w, 1.0 - decay)
    for a, b in zip(average.buffers(), net.buffers()):
        if a.is_floating_point():
            a.lerp_(b, 1.0 - decay)
        else:
            a.copy_(b)


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


DEAD_CHECK_STEP = 50  # hidden units are checked for life after this many steps of a fresh run


@torch.no_grad()
def dead_layer(net, images):
    """The name of the first hidden layer or conv stage of `net` whose every unit outputs 0 on
    every one of `images` (eval mode), or None. A dead ReLU gets no gradient: a layer of them
    never comes back, and the net predicts one class whatever it sees."""
    net = getattr(net, "student", net)  # a hints.Hinted student
    was = net.training
    net.eval()
    features = net.forward_features(images)[1]
    net.train(was)
    return next((name for name, f in features.items() if not f.any()), None)


def stop_if_dead(net, images, steps_taken, suspect):
    layer = dead_layer(net, images)
    if layer is not None:
        raise NeverLearned(f"every unit of {layer} outputs 0 after {steps_taken} steps (dead "
                           f"ReLUs get no gradient, so it never recovers); the likely cause is "
                           f"too large a step: lower {suspect}")


def never_learned(net, watched_set, train_labels, untrained=None):
    """Why `net`, after its first epoch, has learned nothing, or None: on the watched images of
    the classes it trains on, it is no better than always guessing the commonest of them, or
    than it was untrained (`untrained`: its errors then, of `kept_errors`)."""
    errors, count, guess = kept_errors(net, watched_set, train_labels)
    chance = min(guess, guess if untrained is None else untrained)
    if errors >= NEVER_LEARNED * chance:
        return (f"{errors} of {count} watched images wrong after the first epoch, no better than "
                f"always guessing one class ({guess} wrong)" + (
                    "" if untrained is None else f" or than the untrained net ({untrained})"))
    return None


NEVER_LEARNED = 0.95  # errors at this fraction of chance's, or more, after epoch 1
MIN_WATCHED = 1000  # fewer watched images cannot tell a slow start from chance (a tiny test set)


def kept_errors(net, watched_set, train_labels):
    """(errors, count) on the watched images of the classes in `train_labels`, and the errors
    of always guessing the commonest of them."""
    images, labels = watched_set
    kept = torch.isin(labels, torch.unique(train_labels))
    errors = evaluate(net, images[kept], labels[kept])[0]
    count = int(kept.sum())
    return errors, count, count - int(torch.bincount(labels[kept]).max())


def stop_if_never_learned(net, watched_set, train_labels, suspect, untrained):
    problem = never_learned(net, watched_set, train_labels, untrained)
    if problem:
        raise NeverLearned(f"{problem}; the likely cause is {suspect} (too large a step, or a "
                           "term that swamps the loss): lower it")


@records.report_errors
def main(argv=None):
    parser = cli.make_parser(__doc__, students=False)
    local = tp.LocalParams()
    parser.add_argument("--model", choices=["teacher", "small"], required=True,
                        help="teacher: 784-1200-1200-10 with dropout, max-norm and jitter "
                             f"({local.teacher_epochs} epochs of LocalParams, 2-4.5 hours a "
                             f"core); small: 784-800-800-10, no regularization ({local.epochs} epochs)")
    args = parser.parse_args(argv)
    role = args.model
    params = tp.params_from_args(args, "teacher_epochs" if role == "teacher" else "epochs")
    cli.check_common(args, params)
    device = cli.resolve_device(args.device)
    config = cli.net_config(args, params, role)
    out = args.out or cli.default_out(args, role, config)
    checkpoint.check_output(args, out)
    epochs, max_steps = cli.run_length(args, params.teacher_epochs if role == "teacher" else params.epochs)
    jitter, flip = cli.augmentation(args, params, role)

    started = time.perf_counter()
    train_set, val_set, test_set = cli.load_data(args, device)
    cli.precision_note(args.precision, device)
    net = init_net(config, args.seed, device, args.precision)
    checkpoints = checkpoint.checkpoints_of(args, out, role, params, config,
                                            checkpoint.fingerprint(*train_set), device, jitter=jitter,
                                            **({"flip": flip} if flip else {}))
    print(f"{role}: {describe(net.config())} on {device}, {len(train_set[1])} training images, "
          f"{records.count(epochs, 'epoch')}, {type(params).__name__}, jitter {jitter}"
          f"{', flips' if flip else ''}, seed {args.seed}{', bf16' if args.precision == 'bf16' else ''}")
    history, timing = fit(net, [*train_set, None], test_set, params, epochs=epochs, lr=params.lr,
                          seed=args.seed, batch_loss=hard_label_loss, jitter=jitter, flip=flip,
                          max_steps=max_steps, checkpoints=checkpoints, val_set=val_set)
    record = records.run_record(args, params, role, net, len(train_set[1]), test_set, history,
                                timing, time.perf_counter() - started, device, val_set=val_set,
                                jitter=jitter, flip=flip)
    if args.dry_run:
        print("dry run: nothing written")
    else:
        print(f"wrote {out} and {checkpoint.save_run(out, net, record)}")
        checkpoints.finish()
    records.print_summary([(f"{role} {record['architecture']}", record["test_errors"],
                            record["test_count"],
                            f"{records.count(epochs, 'epoch')}, {timing['samples_per_s']:.0f} samples/s")])
    return record


if __name__ == "__main__":
    main()
