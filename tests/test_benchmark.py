"""benchmark.py: end to end on the tiny synthetic MNIST (every row measured, the table consistent);
the bounds, parts and tables on their own."""
import json
import subprocess
import sys

import pytest
import torch

import benchmark
import layers
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
    table = benchmark.markdown(record)
    share = round(100 * record["teacher"]["images_per_s"] / record["teacher_bound"]["images_per_s"])
    assert f"| {record['teacher']['images_per_s']:,.0f} | {share}% |" in table
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
        found = benchmark.conv_bound(config, 2, cpu, channels_last, timer=timer)
        flops = 2 * 2 * (2 * 784 * 4 * 9 + 3 * 196 * 8 * 4 * 9 + 3 * 392 * 16 + 3 * 16 * 10)
        seconds = 0.001 * sum(range(1, 12))
        assert len(seen) == 11 and found["images_per_s"] == pytest.approx(2 / seconds)
        assert found["gflops"] == pytest.approx(flops / seconds / 1e9)
        convs = [tuple(seen[0].shape), tuple(seen[1][1].shape), tuple(seen[2].shape),
                 tuple(seen[3][1].shape), tuple(seen[4][0].shape)]
        assert convs == [(2, 4, 28, 28), (4, 1, 3, 3), (2, 8, 14, 14), (8, 4, 3, 3), (2, 4, 14, 14)]
        assert seen[2].is_contiguous(memory_format=torch.channels_last) == channels_last
    seen.clear()
    found = benchmark.matmul_bound([32], 5, cpu, timer=timer)
    assert len(seen) == 5 and found["images_per_s"] == pytest.approx(5 / 0.015)
    assert [tuple(t.shape) for t in seen] == [(5, 32), (32, 784), (5, 10), (10, 32), (5, 32)]


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


def test_markdown_renders_a_record_from_before_the_cnn_and_precision_parts():
    record = {key: value for key, value in hand_made_record().items()
              if not key.startswith("cnn_") and not key.endswith("_bf16") and key not in
              ("student_consistent", "student_live", "cpu_capability", "native_bf16")}
    table = benchmark.markdown(record)
    assert "on Some CPU, 2 cores, 2 threads" in table and "| 6,000 | 30% | 2.00x | 1,000 MB |" in table
    assert "conv" not in table and "bf16" not in table and "jitter 2" not in table


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
