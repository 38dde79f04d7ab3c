"""reproduce.py: the plan runs a student after its teacher, a second call reruns nothing and
rebuilds the same tables, --print lists teachers first, bad input is one line and exit code 2,
and the README's Reproduce block is the plan's."""
import os
import shutil
import subprocess
import sys
import types

import pytest

import checkpoint
import cli
import distillation
import reproduce
from conftest import REAL_MNIST, ROOT, has_real_data


def call(*argv):
    """reproduce.py as a user runs it, its runs at one thread."""
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "reproduce.py"), *map(str, argv)],
                          capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.fixture
def data(tiny_mnist):
    """The real MNIST where the other tests find it (as the runs are meant), else tiny digits."""
    return REAL_MNIST if has_real_data(REAL_MNIST) else tiny_mnist


def test_runs_students_after_their_teacher_then_reruns_nothing(data, tmp_path):
    out, readme = tmp_path / "runs", tmp_path / "README.md"
    shutil.copy(os.path.join(ROOT, "README.md"), readme)  # tables.py writes into a copy
    argv = ["--quick", "--seeds", "1", "--only", "small", "distilled", "--out-dir", out,
            "--data-dir", data, "--readme", readme, "--jobs", "2"]
    first = call(*argv)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "3 runs: 0 done already, 3 to run on 2 workers" in first.stdout
    finished = [line for line in first.stdout.splitlines() if line.startswith("[")]
    assert [line.split()[0] for line in finished] == ["[1/3]", "[2/3]", "[3/3]"]
    names = [line.split(": ")[1].split(" in ")[0] for line in finished]
    assert sorted(names) == ["distilled s1", "small s1", "teacher s1"]
    assert names.index("teacher s1") < names.index("distilled s1")  # a student after its teacher
    assert finished[-1].endswith("| ETA 0h00m")
    student = reproduce.read_json(str(out / "distilled_T20_s1.json"))
    assert student["teacher"] == str(out / "teacher_s1.pt") and student["epochs"] == 1
    log = (out / "distilled_T20_s1.log").read_text()
    assert log.startswith("$ python distillation.py --T 20 --seed 1 --teacher ")
    tables = readme.read_text()
    assert "| distilled 784-800-800-10, T=20" in tables
    assert f"tables: python tools/tables.py {out} --write {readme}" in first.stdout

    written = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    second = call(*argv)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "3 runs: 3 done already, 0 to run" in second.stdout and "[1/3]" not in second.stdout
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == written  # nothing rerun or logged
    assert readme.read_text() == tables


def test_a_failed_teacher_skips_its_students_and_names_its_log(data, tmp_path):
    out = tmp_path / "runs"
    result = call("--only", "distilled", "--seeds", "1", "--out-dir", out, "--data-dir", data,
                  "--extra=--no-such-flag", "--no-tables")
    assert result.returncode == 1
    log = out / "teacher_s1.log"
    assert f"FAILED (exit code 2, log {log})" in result.stdout
    assert "skipped distilled s1: its teacher teacher s1 did not finish" in result.stdout
    assert "unrecognized arguments: --no-such-flag" in log.read_text()
    assert not list(out.glob("*.json"))


def printed(capsys, *argv):
    reproduce.main(list(map(str, argv)))
    return capsys.readouterr().out.splitlines()


def test_print_lists_teachers_first_resumes_the_interrupted_and_leaves_out_the_finished(
        tmp_path, capsys):
    lines = printed(capsys, "--print", "--seeds", "1", "2", "--out-dir", tmp_path)
    assert len(lines) == 2 * len(reproduce.PLAN)
    outs = [line.split("--out ")[1].split()[0] for line in lines]
    for i, line in enumerate(lines):
        if "--teacher " in line:  # each student after the run that writes its teacher
            teacher = line.split("--teacher ")[1].split()[0]
            assert teacher in outs[:i] and "--model teacher" in lines[outs.index(teacher)]
    assert sum("--model teacher" in line for line in lines) == 2 * 3  # MLP, Fashion and CNN
    (tmp_path / "teacher_s1.resume.pt").touch()  # an interrupted teacher
    (tmp_path / "small_s1.json").write_text("{}")  # a finished small net
    lines = printed(capsys, "--print", "--seeds", "1", "--only", "small", "distilled",
                    "--out-dir", tmp_path)
    assert len(lines) == 2 and lines[0].endswith(" --resume") and "--model teacher" in lines[0]
    assert lines[1].startswith("python distillation.py --T 20 --seed 1 --teacher ")
    assert not lines[1].endswith("--resume")


def test_dry_run_counts_core_hours_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "runs"
    lines = printed(capsys, "--dry-run", "--only", "sweep30", "--seeds", "1", "--out-dir", out,
                    "--jobs", "4")
    assert [line.split()[:2] for line in lines[:2]] == [["teacher", "s1"], ["sweep30", "s1"]]
    assert lines[-1] == "2 of 2 runs to do, about 3.2 core-hours (3h10m on 4 workers); nothing run"
    assert not out.exists()


def test_file_names_are_the_scripts_own(tmp_path):
    """Where the scripts write results and resume states: cli.json_path_of,
    checkpoint.resume_path and a sweep's distillation.out_path."""
    runs = reproduce.runs_of([reproduce.ROWS["teacher"], reproduce.ROWS["sweep30"]], [2],
                             str(tmp_path), None, None, [])
    for run in runs:
        out = run.command[run.command.index("--out") + 1]
        if "--T" in run.command:
            outs = [distillation.out_path(types.SimpleNamespace(out=out), None, float(T), True)
                    for T in reproduce.TEMPERATURES.split()]
        else:
            outs = [out]
        assert run.results == [cli.json_path_of(o) for o in outs]
        assert run.resume == [checkpoint.resume_path(o) for o in outs]


@pytest.mark.parametrize("argv", [["--only", "nope"], ["--jobs", "0"], ["--seeds", "one"],
                                  ["--seeds", "-1"], ["--data-dir", "MISSING"],
                                  ["--onl", "teacher"], ["--extra", "'unclosed"],
                                  ["--readme", "MISSING"], ["--write", "MISSING"]])
def test_bad_input_is_one_line_and_exit_code_2(argv, tmp_path, capsys):
    argv = [str(tmp_path / "missing") if a == "MISSING" else a for a in argv]
    with pytest.raises(SystemExit) as exit:
        reproduce.main(argv + ["--out-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and err.startswith("reproduce.py: error: ")
    assert err.count("\n") == 1 and not (tmp_path / "runs").exists()


def test_bad_input_from_the_shell(tmp_path):
    result = call("--only", "nope", "--out-dir", tmp_path / "runs")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("reproduce.py: error: unknown --only row 'nope'; the rows: ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_the_readme_block_is_the_plan(tmp_path):
    readme = tmp_path / "README.md"
    shutil.copy(os.path.join(ROOT, "README.md"), readme)
    reproduce.main(["--write", str(readme)])
    assert readme.read_text() == open(os.path.join(ROOT, "README.md")).read(), \
        "README's reproduce block is stale: run python tools/reproduce.py --write README.md"
    assert reproduce.readme_block() in readme.read_text()
