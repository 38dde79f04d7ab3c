"""Test errors of trained checkpoints, per class, and optionally their confusion matrices.

    python evaluate.py models/cumbersome_model_1200.pt models/distilled_model_800_20.pt
    python evaluate.py runs/small_model_800_s1.pt --confusion --data-dir DIR

Reads any OUT.pt these scripts wrote (weights only; the architecture comes from the checkpoint's
config) and scores it on the 10,000 MNIST test images.
"""
import argparse

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
    parser.add_argument("--data-dir", default="data",
                        help="MNIST root, downloaded there if absent (default: %(default)s)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--confusion", action="store_true", help="also print each confusion matrix")
    args = parser.parse_args(argv)
    device = cli.resolve_device(args.device)
    nets = [(path, checkpoint.load_net(path, device)) for path in args.checkpoints]
    try:
        images, labels = dataset.load_mnist(args.data_dir, train=False, device=device)
    except dataset.DataError as e:
        raise cli.UsageError(str(e)) from None
    results = []
    print(f"{'checkpoint':<44} {'net':<18} {'errors':>6} {'error %':>7}  errors per class 0-9")
    for path, net in nets:
        errors, per_class, predictions = layers.evaluate(net, images, labels)
        print(f"{path:<44} {layers.describe(net.config()):<18} {errors:>6} "
              f"{100 * errors / len(labels):>7.2f}  {' '.join(map(str, per_class))}")
        if args.confusion:
            print_confusion(confusion_matrix(labels, predictions))
        results.append({"checkpoint": path, "test_errors": errors, "per_class_errors": per_class})
    return results


if __name__ == "__main__":
    main()
