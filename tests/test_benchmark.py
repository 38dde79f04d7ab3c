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
