"""benchmark.py end to end on the tiny synthetic MNIST: every row measured, the table consistent."""
import json
import subprocess
import sys

import pytest

import benchmark
from conftest import ROOT


def test_benchmark_measures_every_row_and_renders_them(tiny_mnist, tmp_path):
    out, readme = tmp_path / "bench.json", tmp_path / "README.md"
    readme.write_text("intro\n<!-- benchmark:begin -->\nold\n<!-- benchmark:end -->\nend\n")
    done = subprocess.run([sys.executable, "benchmark.py", "--data-dir", tiny_mnist, "--device",
                           "cpu", "--repeats", "1", "--out", str(out), "--write", str(readme)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    record = json.loads(out.read_text())
    for part in ("teacher", "student", "dataloader", "dataloader_2workers"):
        assert record[part]["images_per_s"] > 0 and 100 < record[part]["peak_rss_mb"] < 8000
    for limit in ("teacher_bound", "student_bound", "teacher_chain", "student_chain"):
        assert record[limit]["images_per_s"] > 0
    # a smaller net has a higher bound; matmuls back to back cannot beat each one alone by much
    assert record["student_bound"]["images_per_s"] > record["teacher_bound"]["images_per_s"]
    assert 0 < record["teacher"]["evaluate_s"] < 60
    table = benchmark.markdown(record)
    share = round(100 * record["teacher"]["images_per_s"] / record["teacher_bound"]["images_per_s"])
    assert f"| {record['teacher']['images_per_s']:,.0f} | {share}% |" in table
    assert table in done.stdout and table in readme.read_text()
    assert readme.read_text().startswith("intro\n") and readme.read_text().endswith("end\n")
    again = subprocess.run([sys.executable, "benchmark.py", "--table", str(out)], cwd=ROOT,
                           capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout.strip() == table


@pytest.mark.parametrize("argv,word", [(["--repeats", "0"], "--repeats"),
                                       (["--table", "/nonexistent.json"], "nonexistent"),
                                       (["--device", "tpu"], "--device"),
                                       (["--data-dir", "ABSENT"], "MNIST")])
def test_benchmark_bad_input(tmp_path, argv, word):
    argv = [str(tmp_path / "absent") if a == "ABSENT" else a for a in argv]
    done = subprocess.run([sys.executable, "benchmark.py", "--out", str(tmp_path / "b.json"), *argv],
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
    for name, net in nets.items():
        checkpoint.save_run(str(models / f"{name}.pt"), net,
                            {"model": "teacher" if name == "cnn" else "student", "test_errors": 7,
                             "test_count": 100, "dataset": "mnist"})
    out, readme = tmp_path / "dep.json", tmp_path / "README.md"
    readme.write_text("a\n<!-- deployment:begin -->\nold\n<!-- deployment:end -->\nb\n")
    record = deployment.main([str(models), "--repeats", "2", "--out", str(out), "--write", str(readme)])
    rows = {row["checkpoint"].split("/")[-1]: row for row in record["models"]}
    for name, net in nets.items():
        row = rows[f"{name}.pt"]
        assert row["parameters"] == sum(p.numel() for p in net.parameters())
        assert row["bytes"] == (models / f"{name}.pt").stat().st_size
        assert row["multiply_adds"] == layers.multiply_adds(net)
        assert row["latency_ms"] > 0 and row["images_per_s"] > 0 and row["test_errors"] == 7
    # 28*28*4*25 + 14*14*4*8 + 8*10 by hand; 784*16 + 16*10 by hand
    assert rows["cnn.pt"]["multiply_adds"] == 78400 + 6272 + 80
    assert rows["mlp.pt"]["multiply_adds"] == 12544 + 160
    assert json.loads(out.read_text()) == record
    assert deployment.markdown(record) in readme.read_text() and readme.read_text().endswith("b\n")
    again = subprocess.run([sys.executable, "deployment.py", "--table", str(out)], cwd=ROOT,
                           capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout.strip() == deployment.markdown(record)
    empty = subprocess.run([sys.executable, "deployment.py", str(tmp_path / "nothing"), "--out",
                            str(tmp_path / "x.json")], cwd=ROOT, capture_output=True, text=True)
    assert empty.returncode == 2 and "no checkpoints" in empty.stderr
    assert len(empty.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.json").exists()
