"""benchmark.py: end to end on the tiny synthetic MNIST (every row measured, the table consistent);
the bounds (roofline.py), parts and tables on their own."""
import json
import os
import subprocess
import sys

import pytest
import torch

import benchmark
import layers
import roofline
from conftest import ROOT


def test_benchmark_measures_every_row_and_renders_them(tiny_mnist, tmp_path):
    out, readme = tmp_path / "bench.json", tmp_path / "README.md"
    readme.write_text("intro\n<!-- benchmark:begin -->\nold\n<!-- benchmark:end -->\nend\n")
    done = subprocess.run([sys.executable, "tools/benchmark.py", "--data-dir", tiny_mnist, "--device",
                           "cpu", "--quick", "--out", str(out), "--write", str(readme)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    record = json.loads(out.read_text())
    for part in benchmark.PARTS:
        assert record[part]["images_per_s"] > 0 and 100 < record[part]["peak_rss_mb"] < 8000
    for limit in ("teacher_bound", "student_bound", "teacher_chain", "student_chain",
                  "cnn_teacher_bound", "cnn_teacher_bound_channels_last", "cnn_student_bound",
                  "cnn_student_bound_channels_last"):
        assert record[limit]["images_per_s"] > 0
    assert record["student_consistent"]["targets_s"] > 0 and record["native_bf16"] in (True, False)
    assert record["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    # --quick: one run of each, on at most 2,000 training images (the tiny set has 400)
    assert record["quick"] and record["repeats"] == 1 and record["student"]["images"] == 400
    # a smaller net has a higher bound; matmuls back to back cannot beat each one alone by much
    assert record["student_bound"]["images_per_s"] > record["teacher_bound"]["images_per_s"]
    assert 0 < record["teacher"]["evaluate_s"] < 60
    # the roofline: the matmuls plus memory traffic, so below the matmul bound
    assert record["memory_bandwidth"]["gb_per_s"] > 0 and record["memory_bandwidth"]["tensor_mb"] == 64
    for role in ("teacher", "student"):
        assert 0 < record[f"{role}_roofline"]["images_per_s"] < record[f"{role}_bound"]["images_per_s"]
    table = benchmark.markdown(record)
    teacher = record["teacher"]
    share = round(100 * teacher["images_per_s"] / record["teacher_bound"]["images_per_s"])
    assert teacher["pct_of_roofline"] == pytest.approx(
        100 * teacher["images_per_s"] / record["teacher_roofline"]["images_per_s"])
    assert (f"| {teacher['images_per_s']:,.0f} | {share}% | {teacher['pct_of_roofline']:.0f}% |"
            in table)
    assert "| % of matmul bound | % of roofline |" in table and "The roofline bound adds" in table
    assert table in done.stdout and table in readme.read_text()
    assert readme.read_text().startswith("intro\n") and readme.read_text().endswith("end\n")
    again = subprocess.run([sys.executable, "tools/benchmark.py", "--table", str(out)], cwd=ROOT,
                           capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout.strip() == table


def test_the_bounds_are_the_sums_of_their_timed_pieces():
    """A CNN c4k3-c8k3-16 at batch 2: conv 1 forward and weight gradient, conv 2 those and its
    input gradient, then three matmuls for each head layer; the MLP 784-32-10: 2 + 3 matmuls."""
    seen = []

    def timer(fn):  # runs each piece once; piece k "takes" k ms
        seen.append(fn()[0])
        return 0.001 * len(seen)

    config = layers.CNN(channels=[4, 8], kernel=3, hidden=[16]).config()
    cpu = torch.device("cpu")
    for channels_last in (False, True):
        seen.clear()
        found = roofline.conv_bound(config, 2, cpu, channels_last, timer=timer)
        flops = 2 * 2 * (2 * 784 * 4 * 9 + 3 * 196 * 8 * 4 * 9 + 3 * 392 * 16 + 3 * 16 * 10)
        seconds = 0.001 * sum(range(1, 12))
        assert len(seen) == 11 and found["images_per_s"] == pytest.approx(2 / seconds)
        assert found["gflops"] == pytest.approx(flops / seconds / 1e9)
        convs = [tuple(seen[0].shape), tuple(seen[1][1].shape), tuple(seen[2].shape),
                 tuple(seen[3][1].shape), tuple(seen[4][0].shape)]
        assert convs == [(2, 4, 28, 28), (4, 1, 3, 3), (2, 8, 14, 14), (8, 4, 3, 3), (2, 4, 14, 14)]
        assert seen[2].is_contiguous(memory_format=torch.channels_last) == channels_last
    seen.clear()
    found = roofline.matmul_bound([32], 5, cpu, timer=timer)
    assert len(seen) == 5 and found["images_per_s"] == pytest.approx(5 / 0.015)
    assert [tuple(t.shape) for t in seen] == [(5, 32), (32, 784), (5, 10), (10, 32), (5, 32)]


def test_the_roofline_bound_by_hand():
    """The optimizer's traffic: 5 fp32 passes a parameter; max-norm's: one read of the hidden
    weights; the bound: batch / (matmul seconds + bytes / bandwidth)."""
    teacher = roofline.step_traffic(layers.build(benchmark.mlp_config("teacher")))
    # 784*1200 + 1200 + 1200*1200 + 1200 + 1200*10 + 10 parameters; 784*1200 + 1200*1200 checked
    assert teacher == {"parameters": 2395210, "optimizer_bytes": 20 * 2395210,
                       "max_norm_bytes": 4 * 2380800}
    student = roofline.step_traffic(layers.build(benchmark.mlp_config("student")))
    assert student == {"parameters": 1276810, "optimizer_bytes": 20 * 1276810, "max_norm_bytes": 0}
    # 100 images at 10,000 images/s: 10 ms of matmuls; 22 MB at 10 GB/s: 2.2 ms
    found = roofline.roofline_bound({"images_per_s": 10000.0},
                                    {"parameters": 10 ** 6, "optimizer_bytes": 20e6,
                                     "max_norm_bytes": 2e6}, 10.0, 100)
    assert found["matmul_s"] == pytest.approx(0.01) and found["memory_s"] == pytest.approx(0.0022)
    assert found["images_per_s"] == pytest.approx(100 / 0.0122) and found["parameters"] == 10 ** 6


def test_memory_bandwidth_counts_the_bytes_read_and_written():
    def timer(fn):  # each kernel "takes" 1 ms
        fn()
        return 0.001

    found = roofline.memory_bandwidth(torch.device("cpu"), mb=4, timer=timer)
    # a copy reads and writes 4 MiB, an in-place add reads 8 MiB and writes 4
    assert found["copy_gb_per_s"] == pytest.approx(2 * 4 * 2 ** 20 / 0.001 / 1e9)
    assert found["add_gb_per_s"] == pytest.approx(3 * 4 * 2 ** 20 / 0.001 / 1e9)
    assert found["gb_per_s"] == found["add_gb_per_s"] and found["threads"] == torch.get_num_threads()
    measured = roofline.memory_bandwidth(torch.device("cpu"), mb=4,
                                         timer=lambda fn: roofline.median_seconds(fn, 3, 2))
    for key in ("gb_per_s", "copy_gb_per_s", "add_gb_per_s"):
        assert 0 < measured[key] < float("inf")


def test_the_parts_cover_the_cnns_precisions_and_the_consistent_teacher(tiny_mnist):
    parts = set(benchmark.PARTS)
    assert {"student_consistent", "student_live", "cnn_teacher", "cnn_teacher_channels_last",
            "cnn_student", "cnn_student_channels_last"} <= parts
    assert {f"{name}_bf16" for name in ("teacher", "student", "student_consistent",
                                        "cnn_teacher", "cnn_student")} <= parts
    assert benchmark.PARTS["cnn_student_bf16"].keywords == {"precision": "bf16"}
    assert benchmark.PARTS["student_live"].keywords == {"jitter": 2, "cached": False}
    # the README's Fashion-MNIST nets
    assert layers.describe(benchmark.cnn_config("teacher")) == "cnn 1x28x28-c16k3+bn-c32k3+bn-128-10"
    assert layers.describe(benchmark.cnn_config("student")) == "cnn 1x28x28-c8k3+bn-c16k3+bn-64-10"
    train_set, test_set = benchmark.Data(tiny_mnist, 30, 20).load("cpu")
    assert len(train_set[0]) == len(train_set[1]) == 30 and len(test_set[1]) == 20
    assert len(benchmark.Data(tiny_mnist).load("cpu")[0][1]) == 400


def hand_made_record():
    record = {"hardware": "Some CPU, 2 cores", "device": "cpu", "cpu_capability": "AVX512",
              "native_bf16": True, "threads": 2, "torch": "2.x", "batch_size": 100, "quick": False,
              "teacher": {"images_per_s": 6000.0, "evaluate_s": 0.4, "test_images": 10000,
                          "peak_rss_mb": 1000.0},
              "student": {"images_per_s": 12000.0, "targets_s": 6.0},
              "student_consistent": {"images_per_s": 10000.0, "targets_s": 30.0},
              "student_live": {"images_per_s": 5000.0, "targets_s": 0.0},
              "dataloader": {"images_per_s": 2000.0}, "dataloader_2workers": {"images_per_s": 3000.0}}
    for name in ("student", "student_consistent", "student_live"):
        record[name].update(images=60000, run_epochs=60)
    for name in ("teacher_bound", "student_bound", "teacher_chain", "student_chain"):
        record[name] = {"images_per_s": 20000.0, "gflops": 100.0}
    for role, epoch in (("teacher", 1000.0), ("student", 3000.0)):
        record[f"cnn_{role}"] = {"images_per_s": epoch, "peak_rss_mb": 900.0}
        record[f"cnn_{role}_channels_last"] = {"images_per_s": 2 * epoch}
        record[f"cnn_{role}_bound"] = {"images_per_s": 4000.0, "gflops": 50.0}
        record[f"cnn_{role}_bound_channels_last"] = {"images_per_s": 8000.0, "gflops": 100.0}
    for name in ("teacher", "student", "student_consistent", "cnn_teacher", "cnn_student"):
        record[f"{name}_bf16"] = {"images_per_s": 1.5 * record[name]["images_per_s"]}
    return record


def test_markdown_renders_the_cnn_precision_and_consistent_teacher_rows():
    table = benchmark.markdown(hand_made_record())
    assert "on Some CPU, 2 cores (torch CPU capability AVX512, native bf16)," in table
    assert "| the same, `--jitter 2`: consistent teacher (cached views) | 10,000 | 50% |  |  |" in table
    assert "| the same, `--jitter 2`: teacher run live on each batch | 5,000 | 25% |" in table
    assert "costs 1.20x an unjittered one with the consistent teacher's cached views" in table
    assert "2.40x with the teacher run live" in table and "took 30.0 s" in table
    # (60000 / 10000 + 30 / 60) / (60000 / 12000 + 6 / 60) = 6.5 / 5.1
    assert "spread over a 60-epoch run" in table and "the cached epoch costs 1.27x." in table
    assert ("| teacher: cnn 1x28x28-c16k3+bn-c32k3+bn-128-10 | contiguous (NCHW) | 4,000 "
            "(50 GFLOP/s) | 1,000 | 25% | 900 MB |") in table
    assert ("| student, distilled (cached logits): cnn 1x28x28-c8k3+bn-c16k3+bn-64-10 | "
            "channels-last | 8,000 (100 GFLOP/s) | 6,000 | 75% |  |") in table
    assert "| CNN student cnn 1x28x28-c8k3+bn-c16k3+bn-64-10 | 3,000 | 4,500 | 1.50x |" in table
    assert table.count("| 1.50x |") == 5 and "--quick" not in table
    quick = benchmark.markdown({**hand_made_record(), "quick": True})
    assert "A `--quick` trial (epochs of 2,000 images): indicative only." in quick


def test_markdown_renders_the_roofline_column_and_rows():
    record = hand_made_record()  # both matmul bounds 20,000 images/s: 5 ms a step of 100
    record["memory_bandwidth"] = {"gb_per_s": 20.0, "copy_gb_per_s": 15.0, "add_gb_per_s": 20.0,
                                  "tensor_mb": 64, "threads": 2}
    record.update(benchmark.mlp_rooflines(record))
    # teacher: 5 ms + (47,904,200 + 9,523,200) B / 20 GB/s = 5 + 2.87137 ms: 12,704 images/s;
    # student: 5 ms + 25,536,200 B / 20 GB/s = 5 + 1.27681 ms: 15,932 images/s
    assert record["teacher_roofline"]["images_per_s"] == pytest.approx(100 / 0.00787137)
    assert record["student_roofline"]["images_per_s"] == pytest.approx(100 / 0.00627681)
    table = benchmark.markdown(record)
    assert ("| run | images/s | % of matmul bound | % of roofline | vs DataLoader | peak RSS "
            "(main process) |\n|---|---|---|---|---|---|") in table
    assert "| matmul bound, 784-1200-1200-10 step (100 GFLOP/s) | 20,000 | 100% | | | |" in table
    assert ("| roofline bound: those matmuls + 57.4 MB of memory traffic at 20.0 GB/s | 12,704 | "
            "64% | 100% | | |") in table
    assert ("| roofline bound: those matmuls + 25.5 MB of memory traffic at 20.0 GB/s | 15,932 | "
            "80% | 100% | | |") in table
    # 6,000 / 12,704 and 12,000 / 15,932; the chains get no roofline share
    assert "| teacher epoch: this repo (dropout, max-norm, jitter) | 6,000 | 30% | 47% | 2.00x |" in table
    assert "| student distillation epoch, cached teacher logits | 12,000 | 60% | 75% |  |" in table
    assert "| the same matmuls back to back, as in a step | 20,000 | 100% |  |  |  |" in table
    assert ("at 20.0 GB/s: the faster of a copy (15.0 GB/s) and an in-place add (20.0 GB/s) of "
            "64 MB tensors on 2 threads") in table
    # 2.87 ms and 1.28 ms a step, 600 steps a 60,000-image epoch
    assert "47.9 MB a teacher step (2,395,210 parameters), 25.5 MB a student step" in table
    assert "2.87 ms a teacher step, 1.7 s a 60,000-image epoch of 600 steps; 1.28 ms and 0.8 s" in table


def test_markdown_renders_a_record_from_before_the_cnn_and_precision_parts():
    record = {key: value for key, value in hand_made_record().items()
              if not key.startswith("cnn_") and not key.endswith("_bf16") and key not in
              ("student_consistent", "student_live", "cpu_capability", "native_bf16")}
    table = benchmark.markdown(record)
    assert "on Some CPU, 2 cores, 2 threads" in table and "| 6,000 | 30% | 2.00x | 1,000 MB |" in table
    assert "conv" not in table and "bf16" not in table and "jitter 2" not in table
    assert "roofline" not in table and "| % of matmul bound | vs DataLoader |" in table


@pytest.mark.parametrize("name", ["benchmark.json", "benchmark_run_b6c7b6b.json",
                                  "benchmark_xeon_avx512.json"])
def test_the_committed_records_render_without_a_roofline(name):
    with open(os.path.join(ROOT, "results", name)) as f:
        table = benchmark.markdown(json.load(f))
    assert "| run | images/s | % of matmul bound | vs DataLoader |" in table
    assert "roofline" not in table


@pytest.mark.parametrize("argv,word", [(["--repeats", "0"], "--repeats"),
                                       (["--table", "/nonexistent.json"], "nonexistent"),
                                       (["--device", "tpu"], "--device"),
                                       (["--data-dir", "ABSENT"], "MNIST")])
def test_benchmark_bad_input(tmp_path, argv, word):
    argv = [str(tmp_path / "absent") if a == "ABSENT" else a for a in argv]
    done = subprocess.run([sys.executable, "tools/benchmark.py", "--out", str(tmp_path / "b.json"), *argv],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert word in done.stderr and "Traceback" not in done.stderr


def test_deployment_measures_each_checkpoint_and_renders_the_table(tmp_path):
    import checkpoint
    import deployment
    import layers
    models = tmp_path / "models"
    models.mkdir()
    nets = {"cnn": layers.CNN(channels=[4], hidden=[8]), "mlp": layers.MLP(hidden=[16], in_features=784)}
    recorded = {"cnn": 7, "mlp": 11}  # each row must carry its own checkpoint's JSON
    for name, net in nets.items():
        checkpoint.save_run(str(models / f"{name}.pt"), net,
                            {"model": "teacher" if name == "cnn" else "student",
                             "test_errors": recorded[name], "test_count": 100, "dataset": "mnist"})
    out, readme = tmp_path / "dep.json", tmp_path / "README.md"
    readme.write_text("a\n<!-- deployment:begin -->\nold\n<!-- deployment:end -->\nb\n")
    record = deployment.main([str(models), "--repeats", "2", "--out", str(out), "--write", str(readme)])
    rows = {row["checkpoint"].split("/")[-1]: row for row in record["models"]}
    for name, net in nets.items():
        row = rows[f"{name}.pt"]
        assert row["parameters"] == sum(p.numel() for p in net.parameters())
        assert row["bytes"] == (models / f"{name}.pt").stat().st_size
        assert row["multiply_adds"] == layers.multiply_adds(net)
        assert row["latency_ms"] > 0 and row["images_per_s"] > 0
        assert row["test_errors"] == recorded[name] and f"{recorded[name]} of 100" in readme.read_text()
    # 28*28*4*25 + 14*14*4*8 + 8*10 by hand; 784*16 + 16*10 by hand
    assert rows["cnn.pt"]["multiply_adds"] == 78400 + 6272 + 80
    assert rows["mlp.pt"]["multiply_adds"] == 12544 + 160
    assert json.loads(out.read_text()) == record
    assert deployment.markdown(record) in readme.read_text() and readme.read_text().endswith("b\n")
    again = subprocess.run([sys.executable, "tools/deployment.py", "--table", str(out)], cwd=ROOT,
                           capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout.strip() == deployment.markdown(record)
    empty = subprocess.run([sys.executable, "tools/deployment.py", str(tmp_path / "nothing"), "--out",
                            str(tmp_path / "x.json")], cwd=ROOT, capture_output=True, text=True)
    assert empty.returncode == 2 and "no checkpoints" in empty.stderr
    assert len(empty.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.json").exists()
