"""Size and speed of the shipped models: the deployment argument for distillation, measured.

    python tools/deployment.py models                       # measure every models/*.pt, print the table
    python tools/deployment.py models --write docs/SPEED.md  # also put the table into the speed page
    python tools/deployment.py --table results/deployment.json --write docs/SPEED.md   # re-render a saved run

For each checkpoint: parameters, checkpoint bytes, multiply-adds of one image's forward pass
(`layers.multiply_adds`), CPU latency of one image (batch 1) and throughput at batch 1000, each
the median of repeated timed runs at a fixed number of threads (--threads, default 1), and the
test errors its results JSON records. Time on a machine with nothing else running: the numbers
are only as quiet as the machine.
"""
import argparse
import glob
import json
import os
import sys

import torch

sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the scripts, one folder up
import checkpoint
import cli
import layers
import records
import tables
from benchmark import median_seconds

MARKER = "deployment"


@torch.no_grad()
def measure(path, record, repeats):
    net = checkpoint.load_net(path, "cpu")
    one = torch.randint(0, 256, (1, net.in_features), dtype=torch.uint8)
    thousand = torch.randint(0, 256, (1000, net.in_features), dtype=torch.uint8)
    latency = median_seconds(lambda: net(one), repeats, 50)
    batch_s = median_seconds(lambda: net(thousand), repeats, 2)
    return {"checkpoint": path, "model": record["model"], "dataset": record.get("dataset", "mnist"),
            "architecture": layers.describe(net.config()),
            "parameters": sum(p.numel() for p in net.parameters()),
            "bytes": os.path.getsize(path), "multiply_adds": layers.multiply_adds(net),
            "latency_ms": 1000 * latency, "images_per_s": 1000 / batch_s,
            "test_errors": record["test_errors"], "test_count": record["test_count"]}


def results_of(path):
    """The results JSON beside checkpoint `path`; bad input if it is missing or incomplete."""
    try:
        with open(checkpoint.json_path_of(path)) as f:
            record = json.load(f)
        record["model"], record["test_errors"], record["test_count"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise cli.UsageError(f"{path}: its results file {checkpoint.json_path_of(path)!r} is "
                             f"missing or incomplete ({type(e).__name__}: {e})") from None
    return record


def measure_all(folder, threads, repeats):
    paths = sorted(glob.glob(os.path.join(folder, "*.pt")))
    if not paths:
        raise cli.UsageError(f"no checkpoints (*.pt) in {folder!r}")
    results = [results_of(path) for path in paths]  # every one read before any timing
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        rows = []
        for path, record in zip(paths, results):
            print(f"measuring {path} ...", file=sys.stderr, flush=True)
            rows.append(measure(path, record, repeats))
    finally:
        torch.set_num_threads(before)
    return {"folder": folder, "hardware": records.hardware(torch.device("cpu")), "threads": threads,
            "torch": torch.__version__, "repeats": repeats, "code_version": records.CODE_VERSION,
            "models": rows}


def markdown(record):
    lines = [f"Measured by `python tools/deployment.py {record.get('folder', 'models')}` on {record['hardware']}, "
             f"{record['threads']} thread{'s' if record['threads'] > 1 else ''}, torch "
             f"{record['torch']}: median of {record['repeats']} timed runs each.", "",
             "| checkpoint | dataset | net | parameters | checkpoint size | multiply-adds / image "
             "| latency, 1 image | throughput, batch 1000 | test errors |",
             "|---|---|---|---|---|---|---|---|---|"]
    for m in sorted(record["models"], key=lambda m: (m["dataset"], -m["multiply_adds"])):
        lines.append(f"| `{m['checkpoint']}` | {m['dataset']} | {m['model']} {m['architecture']} | "
                     f"{m['parameters']:,} | {m['bytes'] / 2 ** 20:.2f} MiB | "
                     f"{m['multiply_adds'] / 1e6:.2f} M | {m['latency_ms']:.3f} ms | "
                     f"{m['images_per_s']:,.0f} images/s | {m['test_errors']} of {m['test_count']} |")
    return "\n".join(lines)


@records.report_errors
def main(argv=None):
    parser = cli.Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", default="models",
                        help="folder of checkpoints, each with its results JSON (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=7,
                        help="timed runs per measurement; the median is kept (default: %(default)s)")
    parser.add_argument("--out", help="where the measurements go (default: "
                        "results/deployment.json for models/, else FOLDER/deployment.json)")
    parser.add_argument("--table", metavar="JSON", help="only render the table of a saved run")
    parser.add_argument("--write", metavar="README", help="also put the table into this file (docs/SPEED.md holds its block)")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.repeats < 1:
        raise cli.UsageError("--threads and --repeats must be >= 1")
    if args.table:
        try:
            with open(args.table) as f:
                record = json.load(f)
            text = markdown(record)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise cli.UsageError(f"cannot read the saved run {args.table!r} ({type(e).__name__})") from None
    else:
        if args.out is None:
            same = os.path.abspath(args.folder) == os.path.abspath("models")
            args.out = os.path.join("results" if same else args.folder, "deployment.json")
        checkpoint.check_writable(args.out)
        record = measure_all(args.folder, args.threads, args.repeats)
        checkpoint.write_atomic({args.out: lambda f: f.write(json.dumps(record, indent=1).encode())})
        text = markdown(record)
    if args.write:
        tables.write_between_markers(args.write, text, MARKER)
    print(text)
    return record


if __name__ == "__main__":
    main()
