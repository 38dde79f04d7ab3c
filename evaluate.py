"""Test errors of trained checkpoints, per class, and optionally their confusion matrices.

    python evaluate.py models/cumbersome_model_1200.pt models/distilled_model_800_20.pt
    python evaluate.py runs/small_model_800_s1.pt --confusion --data-dir DIR
    python evaluate.py models/*.pt --data-dir MNIST_ROOT --fashion-data-dir FASHION_ROOT
    python evaluate.py models/cumbersome_model_1200.pt --holdout 10000 --json OUT.json

Reads any OUT.pt these scripts wrote (weights only; the architecture comes from the checkpoint's
config) and scores it on the test images of its own dataset (read from its input normalization),
so `python evaluate.py models/*.pt` scores MNIST and Fashion-MNIST nets in one call: each dataset
is read from its root, --data-dir (one root holding MNIST/ and FashionMNIST/ side by side, as
torchvision lays them out) or --fashion-data-dir for Fashion-MNIST's; with --holdout N also on the
N training images the scripts' --holdout N keeps out of training, and on the rest of the training
images.

Every net that can be scored is: a net that cannot (an unreadable file, a net that fits no
dataset, its dataset missing) is one line on stderr, and the exit code is then 1 (0 when all were
scored, 2 for bad usage).
"""
import argparse
import json
import sys

import torch

import checkpoint
import cli
import records
import dataset
import layers


def confusion_matrix(labels, predictions, classes=10):
    """counts[true, predicted]."""
    return torch.bincount(labels * classes + predictions, minlength=classes * classes).view(classes, classes)


def print_confusion(matrix):
    print("true \\ predicted " + "".join(f"{c:>6}" for c in range(len(matrix))))
    for c, row in enumerate(matrix.tolist()):
        print(f"{c:>16} " + "".join(f"{n:>6}" for n in row))


@records.report_errors
def main(argv=None):
    args = parse_args(argv)
    device = cli.resolve_device(args.device)
    cli.check_holdout(args.holdout)
    if args.json:
        checkpoint.check_writable(args.json)
    nets, failed = [], []
    for path in args.checkpoints:
        try:
            nets.append(load(args, path, device))
        except cli.UsageError as e:
            failed.append(not_scored(str(e)))
    sets = {}
    results = []
    width = max(44, *(len(path) for path in args.checkpoints))
    print(f"{'checkpoint':<{width}} {'images':<26} {'errors':>6} {'error %':>7}  errors per class")
    for path, net, data in nets:
        if data not in sets:
            sets[data] = scored_sets(args, device, data)
        if isinstance(sets[data], str):  # the dataset could not be read: its message
            failed.append(not_scored(f"{path!r}: {sets[data]}"))
            continue
        result = {"checkpoint": path, "net": layers.describe(net.config()), "dataset": data}
        for name, (images, labels) in sets[data].items():
            errors, per_class, predictions = layers.evaluate(net, images, labels)
            print(f"{path:<{width}} {data + ' ' + name:<26} {errors:>6} "
                  f"{100 * errors / len(labels):>7.2f}  "
                  f"{' '.join(map(str, per_class))}")
            if args.confusion:
                print_confusion(confusion_matrix(labels, predictions, net.classes))
            result.update({f"{name}_errors": errors, f"{name}_count": len(labels),
                           f"{name}_per_class_errors": per_class})
        results.append(result)
    if args.json:
        checkpoint.write_atomic({args.json: lambda f: f.write(json.dumps(
            {"command": " ".join(sys.argv), "results": results, "failed": failed},
            indent=1).encode())})
    if failed:
        sys.exit(1)
    return results


def parse_args(argv):
    parser = cli.Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", metavar="CKPT", help="checkpoints (.pt) to score")
    parser.add_argument("--dataset", choices=list(dataset.DATASETS),
                        help="the test images to score every net on (default: each net's own, "
                             "read from its input normalization)")
    parser.add_argument("--data-dir", default="data",
                        help="root holding MNIST/ (and each other dataset's folder, as "
                             "torchvision lays them out), downloaded there if absent "
                             "(default: %(default)s)")
    parser.add_argument("--fashion-data-dir", metavar="DIR",
                        help="root holding FashionMNIST/, for the Fashion-MNIST nets "
                             "(default: --data-dir)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--confusion", action="store_true", help="also print each confusion matrix")
    parser.add_argument("--holdout", type=int, default=0, metavar="N",
                        help="also score the N held-out training images of --holdout N, and the "
                             "rest of the training images")
    parser.add_argument("--json", metavar="PATH", help="also write the results (and the nets not "
                        "scored, with why) to this file")
    return parser.parse_args(argv)


def not_scored(message):
    """A net that could not be scored: one line on stderr now; the batch goes on."""
    print(f"evaluate.py: not scored: {message}", file=sys.stderr, flush=True)
    return message


def load(args, path, device):
    """(path, net, the dataset it is scored on); bad input if the net cannot be read or does not
    fit that dataset."""
    net = checkpoint.load_net(path, device)
    name = args.dataset or checkpoint.dataset_of(net) or "mnist"
    checkpoint.check_fits(net, name, f"the net in {path!r}")
    return path, net, name


def root_of(args, name):
    """(its flag, the root) to read dataset `name` from."""
    if name == "fashion-mnist" and args.fashion_data_dir:
        return "--fashion-data-dir", args.fashion_data_dir
    return "--data-dir", args.data_dir


def scored_sets(args, device, name):
    """{name: (images, labels)}: the test set of dataset `name`, and with --holdout the two
    training parts; or, if they cannot be read, why (one line)."""
    flag, root = root_of(args, name)
    try:
        sets = {"test": dataset.load(root, False, device, name)}
        if args.holdout:
            kept, held = cli.split_holdout(dataset.load(root, True, device, name), args.holdout)
            sets.update(held_out=held, train_rest=kept)
    except (dataset.DataError, cli.UsageError) as e:
        return f"{e} ({flag} {root!r})"
    return sets


if __name__ == "__main__":
    main()
