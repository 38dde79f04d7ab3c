"""How close training runs to this machine's matrix-multiply and convolution limits, what bf16
buys, what the consistent teacher costs, and how the MLP teacher compares with the usual
torchvision-transforms + DataLoader pipeline. One command, one machine, one section of tables:

    python tools/benchmark.py --data-dir DIR                             # about 20 minutes on 2 cores
    python tools/benchmark.py --data-dir DIR --quick --out /tmp/b.json   # a trial, about 2 minutes
    python tools/benchmark.py --data-dir DIR --write docs/REFERENCE.md   # also update the reference
    python tools/benchmark.py --table results/benchmark.json --write docs/REFERENCE.md   # re-render a saved run

What is measured, each a training epoch through the project's own `train.fit` and
`distillation.distill` unless said otherwise:
- MLPs (MNIST): a PaperParams teacher epoch (784-1200-1200-10: dropout, max-norm, ±2 px
  jitter, batch 100) and distillation epochs of the 800-800 student (T = 20, batch 100) against
  the matmul bound and the roofline bound of their step; the student unjittered (cached teacher
  logits) and with `--jitter 2`, taught by the consistent teacher (its cached logits of all 25
  shifted views) or by the teacher run live on each shifted batch (`--view-cache-mb 0`); the
  same teacher epoch the usual way (torchvision transforms, a DataLoader with 0 and 2 workers,
  nn.Sequential).
- CNNs: the README's Fashion-MNIST teacher (c16k3+bn-c32k3+bn-128) and student
  (c8k3+bn-c16k3+bn-64; distilled at T = 4 from cached logits), batch 100, against the
  convolution bound of their step, with the nets' tensors contiguous (NCHW) and channels-last.
  They are timed on the MNIST images of --data-dir: the same shape and count as Fashion-MNIST's,
  hence the same work.
- Precision: each of the teacher, student, consistent student, CNN teacher and CNN student
  epochs again with `--precision bf16` (autocast; CNNs channels-last), as bf16/fp32 speed.

The bounds are tools/roofline.py's: the matmul (convolution) bound of a step is the time of the
matrix multiplies (convolutions) it cannot avoid, each timed alone with hot caches; an MLP step's
roofline bound adds the memory traffic it cannot avoid (the SGD update's, the max-norm check's)
at this machine's measured memory bandwidth. The rest of a step (dropout masks, ReLU, batch
norm, pooling, loss, jitter, shuffling; for the CNNs the optimizer too) is overhead.

Every training measurement runs in a fresh subprocess of this script, so its peak resident
memory (RSS, of that process: DataLoader workers are not included) is its own and no
measurement warms another's caches; the bounds are timed in the parent. --quick times epochs
of the first 2,000 training images (500 test images) and runs each measurement once: a
trial, not a measurement.
"""
import argparse
import dataclasses
import functools
import json
import os
import resource
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the scripts, one folder up
import dataset
import distillation
import tables
import checkpoint
import cli
import layers
import records
import roofline
from roofline import median_seconds, sync  # deployment.py takes median_seconds from here
import train
import training_params as tp

TEACHER, STUDENT = [1200, 1200], [800, 800]
# the README's Fashion-MNIST CNN teacher and student (section "Beyond the paper")
CNN_FLAGS = {"teacher": "--channels 16 32 --kernel 3 --batch-norm 1",
             "student": "--channels 8 16 --kernel 3 --batch-norm 1 --hidden 64"}
CNN_BATCH = 100  # the teacher's LocalParams batch and the students' --batch-size 100
QUICK_IMAGES = (2000, 500)  # --quick: training and test images of each measurement
MARKER = "benchmark"
EPOCH_IMAGES = 60000  # MNIST's training set: a full epoch, whatever --quick measured
# the fp32 MLP epochs with a roofline: the step whose bound they are measured against
ROOFLINE_OF = {"teacher": "teacher", "dataloader": "teacher", "dataloader_2workers": "teacher",
               "student": "student", "student_consistent": "student", "student_live": "student"}


# ---------------------------------------------------------------------------- the bounds
def limits(device, timer=median_seconds):
    """Every bound of the report, the MLPs' matmuls back to back, and the memory bandwidth."""
    batch = tp.PaperParams().batch_size
    found = {"teacher_bound": roofline.matmul_bound(TEACHER, batch, device, timer),
             "student_bound": roofline.matmul_bound(STUDENT, batch, device, timer),
             "teacher_chain": roofline.matmul_chain(TEACHER, batch, device, timer),
             "student_chain": roofline.matmul_chain(STUDENT, batch, device, timer),
             "memory_bandwidth": roofline.memory_bandwidth(device, timer=timer)}
    for role in CNN_FLAGS:
        for suffix, channels_last in (("", False), ("_channels_last", True)):
            found[f"cnn_{role}_bound{suffix}"] = roofline.conv_bound(
                cnn_config(role), CNN_BATCH, device, channels_last, timer)
    return found


def faster(limit):
    """What makes one measurement of a limit the better: images/s, or the bandwidth's GB/s."""
    return limit.get("images_per_s", limit.get("gb_per_s"))


def mlp_rooflines(record):
    """The roofline bound of the teacher's and the student's step, from the record's matmul
    bounds and bandwidth (see roofline.roofline_bound)."""
    return {f"{role}_roofline": roofline.roofline_bound(
                record[f"{role}_bound"], roofline.step_traffic(layers.build(mlp_config(role))),
                record["memory_bandwidth"]["gb_per_s"], record["batch_size"])
            for role in ("teacher", "student")}


# ---------------------------------------------------------------------------- the epochs
@dataclasses.dataclass(frozen=True)
class Data:
    """Where the MNIST images are, and how many of them a measurement uses (None: all)."""
    root: str
    train: int | None = None
    test: int | None = None

    def load(self, device):
        """(train, test) as [images, labels] each."""
        train_set = dataset.load(self.root, True, device)
        test_set = dataset.load(self.root, False, device)
        return [t[:self.train] for t in train_set], [t[:self.test] for t in test_set]


def mlp_config(role):
    """The MLP teacher (PaperParams: dropout, max-norm) or the unregularized 800-800 student."""
    config = cli.net_config(cli.make_parser("").parse_args([]), tp.PaperParams(), "teacher")
    if role == "teacher":
        return config
    return {**config, "hidden": STUDENT, "dropout_input": 0.0, "dropout_hidden": 0.0,
            "max_norm": 0.0}


def cnn_config(role):
    flags = f"--arch cnn {CNN_FLAGS[role]} --dataset fashion-mnist".split()
    return cli.net_config(cli.make_parser("").parse_args(flags), tp.LocalParams(), role)


def cnn_net(role, device, precision, channels_last):
    """A fresh CNN (bf16 is channels-last anyway, see `layers.set_precision`)."""
    net = train.init_net(cnn_config(role), 1, device, precision)
    return net.to(memory_format=torch.channels_last) if channels_last else net


def teacher_epoch(data, device, precision="fp32"):
    """One PaperParams teacher epoch (dropout, max-norm, ±2 px jitter) through train.fit."""
    params = tp.PaperParams()
    train_set, test_set = data.load(device)
    net = train.init_net(mlp_config("teacher"), 1, device, precision)
    _, timing = train.fit(net, [*train_set, None], test_set, params, epochs=1, lr=params.lr,
                          seed=1, batch_loss=train.hard_label_loss, jitter=params.jitter)
    evaluate_s = median_seconds(lambda: (layers.evaluate(net, *test_set), sync(device)), 5, 1)
    return {"images_per_s": timing["samples_per_s"], "evaluate_s": evaluate_s,
            "test_images": len(test_set[1])}


def student_epoch(data, device, precision="fp32", jitter=0, cached=True):
    """One distillation epoch of the 800-800 student at T = 20 (the teacher's weights do not
    change the speed); with `jitter`, on shifted images, taught by the consistent teacher
    (`cached`) or by the teacher run on each batch."""
    train_set, test_set = data.load(device)
    teacher = train.init_net(mlp_config("teacher"), 1, device, precision)
    student = train.init_net(mlp_config("student"), 1, device, precision)
    # at the teacher's minibatch, the one the matmul bound is measured at
    run = dataclasses.replace(tp.LocalParams(), distill_batch_size=tp.PaperParams().batch_size)
    return distill_epoch(student, teacher, train_set, test_set, run, jitter, cached)


def distill_epoch(student, teacher, train_set, test_set, run, jitter=0, cached=True):
    """One `distillation.distill` epoch; the teacher's logits (of every view, with `jitter`)
    computed first, as a run of run.distill_epochs does, and timed as `targets_s`; not
    `cached`: the teacher runs on each batch."""
    tick = time.perf_counter()
    logits = (distillation.teacher_targets(teacher, train_set[0], jitter, False,
                                           run.distill_epochs) if cached else None)
    targets_s = time.perf_counter() - tick
    _, timing = distillation.distill(student, teacher, train_set, test_set, run, 1, epochs=1,
                                     jitter=jitter, teacher_logits=logits,
                                     view_cache_mb=cli.VIEW_CACHE_MB if cached else 0)
    return {"images_per_s": timing["samples_per_s"], "targets_s": targets_s,
            "images": len(train_set[1]), "run_epochs": run.distill_epochs}


def cnn_teacher_epoch(data, device, precision="fp32", channels_last=False):
    """One epoch of the Fashion-MNIST CNN teacher as the README trains it (LocalParams,
    dropout in its head, no jitter)."""
    params = tp.LocalParams()
    train_set, test_set = data.load(device)
    net = cnn_net("teacher", device, precision, channels_last)
    _, timing = train.fit(net, [*train_set, None], test_set, params, epochs=1, lr=params.lr,
                          seed=1, batch_loss=train.hard_label_loss, batch_size=CNN_BATCH)
    return {"images_per_s": timing["samples_per_s"]}


def cnn_student_epoch(data, device, precision="fp32", channels_last=False):
    """One distillation epoch of the README's CNN student (T = 4, batch 100, cached logits)."""
    train_set, test_set = data.load(device)
    teacher = cnn_net("teacher", device, precision, channels_last)
    student = cnn_net("student", device, precision, channels_last)
    run = dataclasses.replace(tp.LocalParams(), T=4.0, distill_lr=0.03, distill_warmup_steps=0,
                              distill_batch_size=CNN_BATCH)
    return distill_epoch(student, teacher, train_set, test_set, run)


def dataloader_epoch(data, device, workers):
    """The same teacher epoch the usual way: torchvision transforms, a DataLoader, nn.Sequential."""
    from torchvision import datasets, transforms
    params = tp.PaperParams()
    transform = transforms.Compose([transforms.RandomCrop(28, padding=params.jitter),
                                    transforms.ToTensor(),
                                    transforms.Normalize((0.1307,), (0.3081,))])
    images = datasets.MNIST(data.root, train=True, transform=transform)
    if data.train is not None:
        images = torch.utils.data.Subset(images, range(min(data.train, len(images))))
    loader = torch.utils.data.DataLoader(images, batch_size=params.batch_size, shuffle=True,
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
         "student_consistent": functools.partial(student_epoch, jitter=2),
         "student_live": functools.partial(student_epoch, jitter=2, cached=False),
         "cnn_teacher": cnn_teacher_epoch,
         "cnn_teacher_channels_last": functools.partial(cnn_teacher_epoch, channels_last=True),
         "cnn_student": cnn_student_epoch,
         "cnn_student_channels_last": functools.partial(cnn_student_epoch, channels_last=True),
         "dataloader": functools.partial(dataloader_epoch, workers=0),
         "dataloader_2workers": functools.partial(dataloader_epoch, workers=2)}
BF16_PARTS = ["teacher", "student", "student_consistent", "cnn_teacher", "cnn_student"]
PARTS.update({f"{name}_bf16": functools.partial(PARTS[name], precision="bf16")
              for name in BF16_PARTS})


def run_part(name, args):
    """Run one measurement in a fresh subprocess; its result and peak RSS come back as JSON."""
    command = [sys.executable, os.path.abspath(__file__), "--part", name,
               "--data-dir", args.data_dir, "--device", args.device] + (["--quick"] * args.quick)
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
    data = Data(args.data_dir, *(QUICK_IMAGES if args.quick else ()))
    with open(os.devnull, "w") as quiet:  # fit's progress line would spoil the JSON on stdout
        stdout, sys.stdout = sys.stdout, quiet
        try:
            result = PARTS[name](data, device)
        finally:
            sys.stdout = stdout
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux reports KiB
    result["peak_rss_mb"] = peak_kb / 1024
    if device.type == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2 ** 20
    print(json.dumps(result))


# ---------------------------------------------------------------------------- the report
def native_bf16(device):
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


def benchmark(args, repeats):
    """Every measurement `repeats` times, keeping the fastest: this machine shares its cores
    with other tenants, and a slow outlier says more about them than about the code. The bounds,
    the back-to-back matmuls and the memory bandwidth are measured before and after the runs and
    the higher of each kept, so the % never flatters; the rooflines are made of those."""
    device = cli.resolve_device(args.device)
    for split in (True, False):  # fail now, not after a minute of measuring
        try:
            dataset.load(args.data_dir, split)
        except dataset.DataError as e:
            raise cli.UsageError(str(e)) from None
    record = {"hardware": records.hardware(device), "device": str(device),
              "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "native_bf16": native_bf16(device),
              "threads": torch.get_num_threads(), "torch": torch.__version__,
              "batch_size": tp.PaperParams().batch_size, "repeats": repeats, "quick": args.quick,
              "code_version": records.CODE_VERSION}
    timer = functools.partial(median_seconds, repeats=3, inner=5) if args.quick else median_seconds
    found = [limits(device, timer)]
    for name in PARTS:
        print(f"measuring {name} ({repeats}x) ...", flush=True)
        runs = [run_part(name, args) for _ in range(repeats)]
        record[name] = {**max(runs, key=lambda r: r["images_per_s"]),
                        "all_images_per_s": [r["images_per_s"] for r in runs],
                        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}
    found.append(limits(device, timer))
    for key in found[0]:
        record[key] = max((limit[key] for limit in found), key=faster)
    record.update(mlp_rooflines(record))
    for name, role in ROOFLINE_OF.items():  # in the JSON too, for whoever reads it without us
        roofline_speed = speed(record[f"{role}_roofline"])
        record[name]["pct_of_roofline"] = 100 * speed(record[name]) / roofline_speed
    return record


def speed(part):
    return part["images_per_s"]


def memory(part):
    return f"{part['peak_rss_mb']:,.0f} MB" if "peak_rss_mb" in part else ""


def share(part, bound):
    return f"{100 * speed(part) / speed(bound):.0f}%"


def mlp_table(record):
    """The MLP epochs against their matmul bound and, in records that have them (not those from
    before the roofline), against their roofline: a column more, and a roofline row each."""
    rooflines = "teacher_roofline" in record
    baseline = max(speed(record["dataloader"]), speed(record["dataloader_2workers"]))

    def row(name, part, role, vs_baseline=True, vs_roofline=True):
        cells = [name, f"{speed(part):,.0f}", share(part, record[f"{role}_bound"])]
        if rooflines:
            cells.append(share(part, record[f"{role}_roofline"]) if vs_roofline else "")
        cells += [f"{speed(part) / baseline:.2f}x" if vs_baseline else "", memory(part)]
        return f"| {' | '.join(cells)} |"

    def bound_rows(widths, role):
        bound, empty = record[f"{role}_bound"], " |" * (3 if rooflines else 2)
        rows = [f"| matmul bound, {widths} step ({bound['gflops']:.0f} GFLOP/s) | "
                f"{speed(bound):,.0f} | 100% |{empty}"]
        if rooflines:
            line = record[f"{role}_roofline"]
            traffic = (line["optimizer_bytes"] + line["max_norm_bytes"]) / 1e6
            rows.append(f"| roofline bound: those matmuls + {traffic:.1f} MB of memory traffic at "
                        f"{line['gb_per_s']:.1f} GB/s | {speed(line):,.0f} | {share(line, bound)} | "
                        f"100% | | |")
        return rows

    def chain_row(role):
        return row("the same matmuls back to back, as in a step", record[f"{role}_chain"], role,
                   vs_baseline=False, vs_roofline=False)

    rows = [*bound_rows("784-1200-1200-10", "teacher"), chain_row("teacher"),
            row("teacher epoch: this repo (dropout, max-norm, jitter)", record["teacher"], "teacher"),
            row("teacher epoch: DataLoader, 0 workers", record["dataloader"], "teacher"),
            row("teacher epoch: DataLoader, 2 workers", record["dataloader_2workers"], "teacher"),
            *bound_rows("784-800-800-10", "student"), chain_row("student"),
            row("student distillation epoch, cached teacher logits", record["student"], "student",
                vs_baseline=False)]
    if "student_consistent" in record:
        rows += [row("the same, `--jitter 2`: consistent teacher (cached views)",
                     record["student_consistent"], "student", vs_baseline=False),
                 row("the same, `--jitter 2`: teacher run live on each batch",
                     record["student_live"], "student", vs_baseline=False)]
    roofline_header = " % of roofline |" if rooflines else ""
    return [f"| run | images/s | % of matmul bound |{roofline_header} vs DataLoader | "
            "peak RSS (main process) |", "|---|---|---|---" + "|---" * rooflines + "|---|", *rows]


def threads(count):
    return f"{count} thread{'s' * (count != 1)}"


def roofline_note(record):
    """What the roofline adds to the matmul bound, and what it costs a full epoch."""
    bandwidth, teacher, student = (record[key] for key in
                                   ("memory_bandwidth", "teacher_roofline", "student_roofline"))
    steps = EPOCH_IMAGES // record["batch_size"]
    return (f"The roofline bound adds to the matmuls the memory traffic a step cannot avoid, at "
            f"{bandwidth['gb_per_s']:.1f} GB/s: the faster of a copy ({bandwidth['copy_gb_per_s']:.1f}"
            f" GB/s) and an in-place add ({bandwidth['add_gb_per_s']:.1f} GB/s) of "
            f"{bandwidth['tensor_mb']} MB tensors on {threads(bandwidth['threads'])}. SGD with "
            f"momentum reads each parameter, its gradient and its momentum buffer and writes the "
            f"parameter and the buffer: {roofline.SGD_TENSOR_PASSES} x {roofline.FP32_BYTES} bytes "
            f"a parameter, {teacher['optimizer_bytes'] / 1e6:.1f} MB a teacher step "
            f"({teacher['parameters']:,} parameters), {student['optimizer_bytes'] / 1e6:.1f} MB a "
            f"student step ({student['parameters']:,}); the teacher's max-norm check reads its "
            f"hidden weights once ({teacher['max_norm_bytes'] / 1e6:.1f} MB). That is "
            f"{1e3 * teacher['memory_s']:.2f} ms a teacher step, {steps * teacher['memory_s']:.1f} s "
            f"a {EPOCH_IMAGES:,}-image epoch of {steps} steps; {1e3 * student['memory_s']:.2f} ms and "
            f"{steps * student['memory_s']:.1f} s for the student.")


def cnn_table(record):
    """Each CNN epoch against the convolution bound of its own layout."""
    lines = ["| CNN (Fashion-MNIST), batch 100 | layout | convolution bound, images/s | "
             "epoch, images/s | % of bound | peak RSS (main process) |",
             "|---|---|---|---|---|---|"]
    for role, what in (("teacher", "teacher"), ("student", "student, distilled (cached logits)")):
        net = layers.describe(cnn_config(role))
        for suffix, layout in (("", "contiguous (NCHW)"), ("_channels_last", "channels-last")):
            part, bound = record[f"cnn_{role}{suffix}"], record[f"cnn_{role}_bound{suffix}"]
            lines.append(f"| {what}: {net} | {layout} | {speed(bound):,.0f} "
                         f"({bound['gflops']:.0f} GFLOP/s) | {speed(part):,.0f} | "
                         f"{100 * speed(part) / speed(bound):.0f}% | {memory(part)} |")
    return lines


def precision_table(record):
    names = {"teacher": "teacher 784-1200-1200-10 (dropout, max-norm, jitter)",
             "student": "student 800-800, cached teacher logits",
             "student_consistent": "student 800-800, `--jitter 2`, consistent teacher (cached views)",
             "cnn_teacher": f"CNN teacher {layers.describe(cnn_config('teacher'))}",
             "cnn_student": f"CNN student {layers.describe(cnn_config('student'))}"}
    lines = ["| epoch | fp32, images/s | bf16, images/s | bf16 / fp32 |", "|---|---|---|---|"]
    for name in BF16_PARTS:
        fp32, bf16 = speed(record[name]), speed(record[f"{name}_bf16"])
        lines.append(f"| {names[name]} | {fp32:,.0f} | {bf16:,.0f} | {bf16 / fp32:.2f}x |")
    return lines


def run_epoch_s(part):
    """Seconds of one epoch of a distillation run, its teacher's passes before training
    (`targets_s`) spread over the run's epochs."""
    return part["images"] / speed(part) + part["targets_s"] / part["run_epochs"]


def consistent_cost(record):
    """What a `--jitter 2` student epoch costs against an unjittered one (the target: 1.15x)."""
    unjittered, cached, live = (record[name] for name in ("student", "student_consistent",
                                                          "student_live"))
    return (f"A `--jitter 2` student epoch (fp32) costs {speed(unjittered) / speed(cached):.2f}x "
            f"an unjittered one with the consistent teacher's cached views (the target: at most "
            f"1.15x), {speed(unjittered) / speed(live):.2f}x with the teacher run live on each "
            f"shifted batch (`--view-cache-mb 0`). Caching the 25 views took "
            f"{cached['targets_s']:.1f} s, once per run; spread over a {cached['run_epochs']}-epoch "
            f"run, with the unjittered run's one teacher pass spread likewise, the cached epoch "
            f"costs {run_epoch_s(cached) / run_epoch_s(unjittered):.2f}x.")


def markdown(record):
    """The tables of a record; a record of an earlier benchmark, without the CNN, precision,
    consistent-teacher or roofline measurements, renders without them."""
    machine = record["hardware"]
    if "cpu_capability" in record:
        machine += (f" (torch CPU capability {record['cpu_capability']}, "
                    f"{'native' if record['native_bf16'] else 'no native'} bf16)")
    lines = [f"Measured by `python tools/benchmark.py` on {machine}, {record['threads']} threads, "
             f"torch {record['torch']}, {record['device']}, batch {record['batch_size']}."]
    if record.get("quick"):
        lines.append(f"A `--quick` trial (epochs of {QUICK_IMAGES[0]:,} images): indicative only.")
    lines += ["", *mlp_table(record), "",
              f"Evaluating the teacher on the {record['teacher'].get('test_images', 10000):,} "
              f"test images: {record['teacher']['evaluate_s']:.3f} s. The speed-up is over the "
              "faster of the two DataLoader runs."]
    if "teacher_roofline" in record:
        lines += ["", roofline_note(record)]
    if "student_consistent" in record:
        lines += ["", consistent_cost(record)]
    if "cnn_teacher" in record:
        lines += ["", *cnn_table(record)]
    if "teacher_bf16" in record:
        lines += ["", *precision_table(record)]
    return "\n".join(lines)


def main(argv=None):
    parser = cli.Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data", help="MNIST root (downloaded there if absent)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--out", default=os.path.join("results", "benchmark.json"),
                        help="where the measurements go (default: %(default)s)")
    parser.add_argument("--repeats", type=int,
                        help="runs of each measurement; the fastest is kept (default: 2, "
                             "with --quick 1)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a trial: epochs of the first {QUICK_IMAGES[0]:,} training images "
                             f"({QUICK_IMAGES[1]:,} test images)")
    parser.add_argument("--table", metavar="JSON", help="only print the table of a saved run")
    parser.add_argument("--write", metavar="README", help="also put the table into this file")
    parser.add_argument("--part", choices=sorted(PARTS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.part:
        return measure_part(args.part, args)
    repeats = args.repeats if args.repeats is not None else 1 if args.quick else 2
    if repeats < 1:
        parser.error(f"--repeats must be >= 1, got {repeats}")
    try:
        if args.table:
            with open(args.table) as f:
                record = json.load(f)
        else:
            checkpoint.check_writable(args.out)
            record = benchmark(args, repeats)
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
