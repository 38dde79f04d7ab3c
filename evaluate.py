"""Test errors of trained checkpoints, per class, and optionally their confusion matrices.

    python evaluate.py models/cumbersome_model_1200.pt models/distilled_model_800_20.pt
    python evaluate.py runs/small_model_800_s1.pt --confusion --data-dir DIR
    python evaluate.py models/cumbersome_model_1200.pt --holdout 10000 --json OUT.json

Reads any OUT.pt these scripts wrote (weights only; the architecture comes from the checkpoint's
config) and scores it on the test images of its own dataset (read from its input normalization),
so `python evaluate.py models/*.pt` scores MNIST and Fashion-MNIST nets in one call, with one
--data-dir root holding MNIST/ and FashionMNIST/ side by side, as torchvision lays them out;
with --holdout N also on the N training images the scripts' --holdout N keeps out of training,
and on the rest of the training images.
"""
import argparse
import json
import sys

import torch

import checkpoint
import cli
import dataset
import layers


def confusion_matrix(labels, predictions, classes=10):
    """counts[true, predicted]."""
    return torch.bincount(labels * classes + predictions, minlength=classes * classes).view(classes, classes)


def print_confusion(matrix):
    print("true \\ predicted " + "".join(f"{c:>6}" for c in range(len(matrix))))
    for c, row in enumerate(matrix.tolist()):
        print(f"{c:>16} " + "".join(f"{n:>6}" for n in row))


@cli.report_errors
def main(argv=None):
    parser = cli.Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", metavar="CKPT", help="checkpoints (.pt) to score")
    parser.add_argument("--dataset", choices=list(dataset.DATASETS),
                        help="the test images to score every net on (default: each net's own, "
                             "read from its input normalization)")
    parser.add_argument("--data-dir", default="data",
                        help="datasets' root, downloaded there if absent (default: %(default)s)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--confusion", action="store_true", help="also print each confusion matrix")
    parser.add_argument("--holdout", type=int, default=0, metavar="N",
                        help="also score the N held-out training images of --holdout N, and the "
                             "rest of the training images")
    parser.add_argument("--json", metavar="PATH", help="also write the results to this file")
    args = parser.parse_args(argv)
    device = cli.resolve_device(args.device)
    cli.check_holdout(args.holdout)
    if args.json:
        cli.check_writable(args.json)
    nets = [(path, checkpoint.load_net(path, device)) for path in args.checkpoints]
    datasets = [args.dataset or cli.dataset_of(net) or "mnist" for _, net in nets]
    for (path, net), name in zip(nets, datasets):
        cli.check_fits(net, name, f"the net in {path!r}")
    sets = {name: scored_sets(args, device, name) for name in dict.fromkeys(datasets)}
    results = []
    width = max(44, *(len(path) for path in args.checkpoints))
    print(f"{'checkpoint':<{width}} {'images':<26} {'errors':>6} {'error %':>7}  errors per class")
    for (path, net), data in zip(nets, datasets):
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
        checkpoint.write_atomic({args.json: lambda f: f.write(
            json.dumps({"command": " ".join(sys.argv), "results": results}, indent=1).encode())})
    return results


def scored_sets(args, device, name):
    """{name: (images, labels)}: the test set of dataset `name`, and with --holdout the two
    training parts."""
    try:
        sets = {"test": dataset.load(args.data_dir, False, device, name)}
        if args.holdout:
            kept, held = cli.split_holdout(
                dataset.load(args.data_dir, True, device, name), args.holdout)
            sets.update(held_out=held, train_rest=kept)
    except dataset.DataError as e:
        raise cli.UsageError(str(e)) from None
    return sets


if __name__ == "__main__":
    main()
