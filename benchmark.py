"""How close training runs to this machine's matrix-multiply limit, and how it compares with the
usual torchvision-transforms + DataLoader pipeline. One command, one machine, one table:

    python benchmark.py --data-dir DIR                           # about 3 minutes on 2 cores
    python benchmark.py --data-dir DIR --write docs/REFERENCE.md   # also update the reference
    python benchmark.py --table results/benchmark.json --write docs/REFERENCE.md   # re-render a saved run

The matmul bound of a training step is the time of the matrix multiplies it cannot avoid (per
layer: forward, weight gradient, and input gradient except for the first layer), each timed alone
at the layer's shape and batch size, with hot caches: images/s = batch / sum of those times. The
rest of a step (dropout masks, ReLU, loss, optimizer, max-norm, jitter, shuffling) is overhead.

Every training measurement runs in a fresh subprocess of this script, so its peak resident
memory (RSS, of that process: DataLoader workers are not included) is its own and no
measurement warms another's caches; the matmul timings run in the parent.
"""
import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import dataset
import distillation
import tables
import checkpoint
import cli
import layers
import records
import train
import training_params as tp

TEACHER, STUDENT = [1200, 1200], [800, 800]
MARKER = "benchmark"


# ---------------------------------------------------------------------------- the measurements
def median_seconds(fn, repeats=7, inner=20):
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - tick) / inner)
    return statistics.median(times)


def matmul_bound(hidden, batch_size, device):
    """Images/s if a training step were nothing but its matrix multiplies, and their GFLOP/s."""
    widths = [784, *hidden, 10]
    seconds = flops = 0.0
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        x, w = torch.randn(batch_size, n_in, device=device), torch.randn(n_out, n_in, device=device)
        g = torch.randn(batch_size, n_out, device=device)
        products = [lambda: x @ w.t(), lambda: g.t() @ x] + ([lambda: g @ w] if i > 0 else [])
        for product in products:
            seconds += median_seconds(lambda: (product(), sync(device)))
            flops += 2.0 * batch_size * n_in * n_out
    return {"images_per_s": batch_size / seconds, "gflops": flops / seconds / 1e9}


def matmul_chain(hidden, batch_size, device):
    """Images/s of the same matrix multiplies run back to back as a step runs them, each on the
    previous one's output: what a step would cost if everything else were free."""
    widths = [784, *hidden, 10]
    weights = [torch.randn(b, a, device=device) / a ** 0.5 for a, b in zip(widths[:-1], widths[1:])]
    x, grad_out = torch.rand(batch_size, 784, device=device), torch.randn(batch_size, 10, device=device)

    def step():
        activations = [x]
        for w in weights:
            activations.append(activations[-1] @ w.t())
        g = grad_out
        for i in reversed(range(len(weights))):
            g.t() @ activations[i]
            if i > 0:
                g = g @ weights[i]
        sync(device)
    return {"images_per_s": batch_size / median_seconds(step)}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def teacher_setup(data_dir, device):
    params = tp.PaperParams()
    no_flags = cli.make_parser("").parse_args([])
    config = cli.net_config(no_flags, params, "teacher")
    train_set = dataset.load(data_dir, True, device)
    test_set = dataset.load(data_dir, False, device)
    return params, config, train_set, test_set


def teacher_epoch(data_dir, device):
    """One PaperParams teacher epoch (dropout, max-norm, ±2 px jitter) through train.fit."""
    params, config, train_set, test_set = teacher_setup(data_dir, device)
    net = train.init_net(config, 1, device)
    _, timing = train.fit(net, [*train_set, None], test_set, params, epochs=1, lr=params.lr,
                          seed=1, batch_loss=train.hard_label_loss, jitter=params.jitter)
    evaluate_s = median_seconds(lambda: (layers.evaluate(net, *test_set), sync(device)), 5, 1)
    return {"images_per_s": timing["samples_per_s"], "evaluate_s": evaluate_s}


def student_epoch(data_dir, device):
    """One distillation epoch of the 800-800 student at T = 20 with cached teacher logits."""
    params, teacher_config, train_set, test_set = teacher_setup(data_dir, device)
    teacher = train.init_net(teacher_config, 1, device)  # its weights do not change the speed
    # at the teacher's minibatch, the one the matmul bound is measured at
    run = dataclasses.replace(tp.LocalParams(), distill_epochs=1, distill_batch_size=params.batch_size)
    student = train.init_net({**teacher_config, "hidden": STUDENT, "dropout_input": 0.0,
                              "dropout_hidden": 0.0, "max_norm": 0.0}, 1, device)
    _, timing = distillation.distill(student, teacher, train_set, test_set, run, 1)
    return {"images_per_s": timing["samples_per_s"]}


def dataloader_epoch(data_dir, device, workers):
    """The same teacher epoch the usual way: torchvision transforms, a DataLoader, nn.Sequential."""
    from torchvision import datasets, transforms
    params = tp.PaperParams()
    transform = transforms.Compose([transforms.RandomCrop(28, padding=params.jitter),
                                    transforms.ToTensor(),
                                    transforms.Normalize((0.1307,), (0.3081,))])
    data = datasets.MNIST(data_dir, train=True, transform=transform)
    loader = torch.utils.data.DataLoader(data, batch_size=params.batch_size, shuffle=True,
                                         num_workers=workers)
    torch.manual_seed(1)
    net = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(784, 1200), nn.ReLU(),
                        nn.Dropout(0.5), nn.Linear(1200, 1200), nn.ReLU(), nn.Dropout(0.5),
                        nn.Linear(1200, 10)).to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.03, momentum=0.9)
    tick, seen = time.perf_counter(), 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for layer in (net[2], net[5]):
                layer.weight.renorm_(2, 0, params.max_norm)
        seen += len(y)
    sync(device)
    speed = seen / (time.perf_counter() - tick)
    if not torch.isfinite(loss):  # a diverged run would not be the same work
        raise RuntimeError(f"the DataLoader baseline diverged (loss {loss.item()})")
    return {"images_per_s": speed, "workers": workers, "final_loss": loss.item()}


PARTS = {"teacher": teacher_epoch, "student": student_epoch,
         "dataloader": lambda d, dev: dataloader_epoch(d, dev, 0),
         "dataloader_2workers": lambda d, dev: dataloader_epoch(d, dev, 2)}


def run_part(name, args):
    """Run one measurement in a fresh subprocess; its result and peak RSS come back as JSON."""
    command = [sys.executable, os.path.abspath(__file__), "--part", name,
               "--data-dir", args.data_dir, "--device", args.device]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    except subprocess.TimeoutExpired:
        raise cli.UsageError(f"the {name} measurement took over an hour; stopped") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise cli.UsageError(f"the {name} measurement failed: "
                               f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    return json.loads(lines[-1])


def measure_part(name, args):
    device = cli.resolve_device(args.device)
    with open(os.devnull, "w") as quiet:  # fit's progress line would spoil the JSON on stdout
        stdout, sys.stdout = sys.stdout, quiet
        try:
            result = PARTS[name](args.data_dir, device)
        finally:
            sys.stdout = stdout
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux reports KiB
    result["peak_rss_mb"] = peak_kb / 1024
    if device.type == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2 ** 20
    print(json.dumps(result))


# ---------------------------------------------------------------------------- the report
def matmul_limits(batch, device):
    return {"teacher_bound": matmul_bound(TEACHER, batch, device),
            "student_bound": matmul_bound(STUDENT, batch, device),
            "teacher_chain": matmul_chain(TEACHER, batch, device),
            "student_chain": matmul_chain(STUDENT, batch, device)}


def benchmark(args):
    """Every measurement `repeats` times, keeping the fastest: this machine shares its cores
    with other tenants, and a slow outlier says more about them than about the code. The bound
    and the back-to-back matmuls are measured before and after the runs and the higher kept,
    so the % never flatters."""
    device = cli.resolve_device(args.device)
    for split in (True, False):  # fail now, not after a minute of measuring
        try:
            dataset.load(args.data_dir, split)
        except dataset.DataError as e:
            raise cli.UsageError(str(e)) from None
    batch = tp.PaperParams().batch_size
    record = {"hardware": records.hardware(device), "device": str(device),
              "threads": torch.get_num_threads(), "torch": torch.__version__, "batch_size": batch,
              "repeats": args.repeats, "code_version": records.CODE_VERSION}
    limits = [matmul_limits(batch, device)]
    for name in PARTS:
        print(f"measuring {name} ({args.repeats}x) ...", flush=True)
        runs = [run_part(name, args) for _ in range(args.repeats)]
        record[name] = {**max(runs, key=lambda r: r["images_per_s"]),
                        "all_images_per_s": [r["images_per_s"] for r in runs],
                        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}
    limits.append(matmul_limits(batch, device))
    for key in limits[0]:
        record[key] = max((limit[key] for limit in limits), key=lambda m: m["images_per_s"])
    return record


def markdown(record):
    bound_t, bound_s = record["teacher_bound"], record["student_bound"]
    baseline = max(record["dataloader"]["images_per_s"],
                   record["dataloader_2workers"]["images_per_s"])

    def row(name, part, bound, vs_baseline=True):
        speed = part["images_per_s"]
        ratio = f"{speed / baseline:.2f}x" if vs_baseline else ""
        memory = f"{part['peak_rss_mb']:,.0f} MB" if "peak_rss_mb" in part else ""
        return (f"| {name} | {speed:,.0f} | {100 * speed / bound['images_per_s']:.0f}% | "
                f"{ratio} | {memory} |")

    lines = [f"Measured by `python benchmark.py` on {record['hardware']}, {record['threads']} "
             f"threads, torch {record['torch']}, {record['device']}, batch {record['batch_size']}.",
             "",
             "| run | images/s | % of matmul bound | vs DataLoader | peak RSS (main process) |",
             "|---|---|---|---|---|",
             f"| matmul bound, 784-1200-1200-10 step ({bound_t['gflops']:.0f} GFLOP/s) | "
             f"{bound_t['images_per_s']:,.0f} | 100% | | |",
             row("the same matmuls back to back, as in a step", record["teacher_chain"], bound_t,
                 vs_baseline=False),
             row("teacher epoch: this repo (dropout, max-norm, jitter)", record["teacher"], bound_t),
             row("teacher epoch: DataLoader, 0 workers", record["dataloader"], bound_t),
             row("teacher epoch: DataLoader, 2 workers", record["dataloader_2workers"], bound_t),
             f"| matmul bound, 784-800-800-10 step ({bound_s['gflops']:.0f} GFLOP/s) | "
             f"{bound_s['images_per_s']:,.0f} | 100% | | |",
             row("the same matmuls back to back, as in a step", record["student_chain"], bound_s,
                 vs_baseline=False),
             row("student distillation epoch, cached teacher logits", record["student"], bound_s,
                 vs_baseline=False),
             "",
             f"Evaluating the teacher on the 10,000 test images: "
             f"{record['teacher']['evaluate_s']:.3f} s. The speed-up is over the faster of the two "
             "DataLoader runs."]
    return "\n".join(lines)


def main(argv=None):
    parser = cli.Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data", help="MNIST root (downloaded there if absent)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--out", default=os.path.join("results", "benchmark.json"),
                        help="where the measurements go (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="runs of each measurement; the fastest is kept (default: %(default)s)")
    parser.add_argument("--table", metavar="JSON", help="only print the table of a saved run")
    parser.add_argument("--write", metavar="README", help="also put the table into this file")
    parser.add_argument("--part", choices=sorted(PARTS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.part:
        return measure_part(args.part, args)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    try:
        if args.table:
            with open(args.table) as f:
                record = json.load(f)
        else:
            cli.check_writable(args.out)
            record = benchmark(args)
            checkpoint.write_atomic({args.out: lambda f: f.write(json.dumps(record, indent=1).encode())})
        text = markdown(record)
        if args.write:
            tables.write_between_markers(args.write, text, MARKER)
    except (cli.UsageError, OSError, ValueError, KeyError) as e:
        print(f"benchmark.py: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(text)


if __name__ == "__main__":
    main()
