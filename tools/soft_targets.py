"""What a teacher's soft targets carry, measured on the TRAINING images (never the test set).

    python tools/soft_targets.py models/cumbersome_model_1200.pt models/teachers/*.pt \\
        --data-dir ../shared/data/mnist --T 20 --out results/teacher_targets/teachers_T20.json

For each teacher, with p = softmax(logits / T) its soft targets at temperature T:
  entropy     mean over images of -sum_c p_c ln p_c, in nats (ln 10 = 2.30 is uniform): how much
              the targets say beyond the hard label;
  p_true      mean p of the true class;
  mass_on_3   mean p_3 over the images that are not 3s. The no-3 student (distillation_no_three.py
              --omit 3) never sees a 3: it learns about 3s only from this mass, so it is the
              whole signal that sets its class-3 weights and output bias;
  mass_on     per class c, the mean p_c over the images whose label is not c (mass_on[3] is
              mass_on_3); the table gives the mean and the min-max of the classes other than 3;
  logit_std   the spread of an image's 10 logits, torch.std (n - 1) per image, averaged: the
              teacher's logit scale. A sharper teacher (larger scale) puts less mass on wrong
              classes at a given T, so it teaches less about them. logit_std_all is the std of
              all N x 10 logits pooled, which also counts the per-image offsets softmax ignores;
  margin_3    on the images that are not 3s, the mean of (logit of class 3 minus the mean of the
              9 logits other than the true class's, class 3 among them): how far class 3 stands
              above the typical wrong class, in logit units (divide by T for its effect on p).
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the scripts, one folder up
import checkpoint
import cli
import records
import dataset
import layers
import tables

MARKER = "teacher_targets"
OMITTED = 3  # the class the no-3 experiment leaves out


def statistics(logits, labels, T, omitted=OMITTED):
    """The numbers of the docstring for one teacher's logits (N, C) and labels (N,)."""
    z = logits.double()
    logp = torch.log_softmax(z / T, dim=1)
    p = logp.exp()
    classes = z.shape[1]
    others = labels != omitted
    true_logit = z.gather(1, labels[:, None])[:, 0]
    wrong_mean = (z.sum(1) - true_logit) / (classes - 1)
    mass_on = [p[labels != c, c].mean().item() for c in range(classes)]
    return {"entropy": -(p * logp).sum(1).mean().item(),
            "p_true": p.gather(1, labels[:, None]).mean().item(),
            "mass_on_3": mass_on[omitted], "mass_on": mass_on,
            "logit_std": z.std(dim=1).mean().item(), "logit_std_all": z.std().item(),
            "margin_3": (z[others, omitted] - wrong_mean[others]).mean().item(),
            "train_errors": (z.argmax(1) != labels).sum().item()}


def recorded(path):
    """Test errors, epochs and seed from the results JSON beside the checkpoint, if any."""
    try:
        with open(checkpoint.json_path_of(path)) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return {}
    return {k: record.get(k) for k in ("test_errors", "epochs", "seed")} if isinstance(record, dict) else {}


def measure(paths, data_dir, T):
    nets = [checkpoint.load_net(path, "cpu", "mnist") for path in paths]  # all checked first
    try:
        images, labels = dataset.load(data_dir, True, "cpu", "mnist")
    except dataset.DataError as e:
        raise cli.UsageError(str(e)) from None
    rows = []
    for path, net in zip(paths, nets):
        with torch.no_grad():
            logits = layers.logits_of(net, images)
        rows.append({"checkpoint": path, **recorded(path), **statistics(logits, labels, T)})
    return {"T": T, "split": "train", "images": len(labels), "data_dir": data_dir, "teachers": rows}


def markdown(record):
    lines = [f"Soft targets at T = {record['T']:g} on the {record['images']:,} training images "
             "(`python tools/soft_targets.py`); masses from images not of that class.", "",
             "| teacher | test errors | epochs | seed | entropy (nats) | p(true) | mass on 3 "
             "| mass on others, mean (min-max) | logit std (per image / pooled) | class-3 margin |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in record["teachers"]:
        rest = [m for c, m in enumerate(r["mass_on"]) if c != OMITTED]
        lines.append(f"| `{r['checkpoint']}` | {r.get('test_errors', '-')} | {r.get('epochs', '-')} | "
                     f"{r.get('seed', '-')} | {r['entropy']:.3f} | {r['p_true']:.4f} | "
                     f"{r['mass_on_3']:.5f} | {sum(rest) / len(rest):.5f} ({min(rest):.5f}-"
                     f"{max(rest):.5f}) | {r['logit_std']:.2f} / {r['logit_std_all']:.2f} | "
                     f"{r['margin_3']:.2f} |")
    return "\n".join(lines)


@records.report_errors
def main(argv=None):
    parser = cli.Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("teachers", nargs="+", metavar="TEACHER.pt", help="teacher checkpoints")
    parser.add_argument("--data-dir", default="data", help="MNIST's root (default: %(default)s)")
    parser.add_argument("--T", type=float, default=20.0, help="temperature (default: %(default)s)")
    parser.add_argument("--out", help="where the numbers go, as JSON (default: none)")
    parser.add_argument("--write", metavar="FILE", help="also put the table into this file")
    args = parser.parse_args(argv)
    if not (args.T > 0 and args.T < float("inf")):
        raise cli.UsageError(f"--T must be a positive finite number, not {args.T}")
    if args.out and os.path.isdir(args.out):
        raise cli.UsageError(f"output {args.out!r} is a folder; pick another --out")
    if args.write:
        tables.refresh(args.write, {MARKER: ""}, write=False)  # its markers checked before the work
    record = measure(args.teachers, args.data_dir, args.T)
    text = markdown(record)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        checkpoint.write_atomic({args.out: lambda f: f.write(json.dumps(record, indent=1).encode())})
    if args.write:
        tables.write_between_markers(args.write, text, MARKER)
    print(text)
    return record


if __name__ == "__main__":
    main()
