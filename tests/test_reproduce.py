"""reproduce.py: the plan runs a student after its teacher, a second call reruns nothing and
rebuilds the same tables, --print lists teachers first, --quick is the plan at toy size (rows kept
apart, estimates scaled) in a folder of its own, bad input is one line and exit code 2, and the
reproduce block of docs/REPRODUCE.md is the plan's."""
import os
import shutil
import subprocess
import sys
import types

import pytest

import checkpoint
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


def test_runs_students_after_their_teacher_then_reruns_nothing(data, tmp_path, capsys):
    out, readme = tmp_path / "runs", tmp_path / "README.md"
    quick = out / "quick"  # --quick's own folder
    shutil.copy(os.path.join(ROOT, "README.md"), readme)  # tables.py writes into a copy
    # small and small3 differ in their subset, which --quick keeps apart: one row each
    argv = ["--quick", "--seeds", "1", "--only", "small", "small3", "distilled", "--out-dir", out,
            "--data-dir", data, "--readme", readme, "--jobs", "2"]
    first = call(*argv)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "4 runs: 0 done already, 4 to run on 2 workers" in first.stdout
    finished = [line for line in first.stdout.splitlines() if line.startswith("[")]
    assert [line.split()[0] for line in finished] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    names = [line.split(": ")[1].split(" in ")[0] for line in finished]
    assert sorted(names) == ["distilled s1", "small s1", "small3 s1", "teacher s1"]
    assert names.index("teacher s1") < names.index("distilled s1")  # a student after its teacher
    assert all(line.split("| ETA ")[1].startswith("0h0") for line in finished)  # toy-size ETAs
    assert finished[-1].endswith("| ETA 0h00m")
    student = reproduce.read_json(str(quick / "distilled_T20_s1.json"))
    assert student["teacher"] == str(quick / "teacher_s1.pt") and student["epochs"] == 1
    assert reproduce.read_json(str(quick / "small_sub0.03_s1.json"))["subset"] == 0.03
    log = (quick / "distilled_T20_s1.log").read_text()
    assert log.startswith("$ python distillation.py --T 20 --seed 1 --teacher ")
    tables = readme.read_text()
    assert "| distilled 784-800-800-10, T=20" in tables
    assert f"tables: python tools/tables.py {quick} --write {readme}" in first.stdout

    written = {p: p.stat().st_mtime_ns for p in quick.iterdir()}
    second = call(*argv)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "4 runs: 4 done already, 0 to run" in second.stdout and "[1/4]" not in second.stdout
    assert {p: p.stat().st_mtime_ns for p in quick.iterdir()} == written  # nothing rerun or logged
    assert readme.read_text() == tables
    # the real plan in the same --out-dir counts none of the toy runs as done
    assert len(printed(capsys, "--print", "--seeds", "1", "--only", "small", "small3", "distilled",
                       "--out-dir", out)) == 4


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


def test_quick_dry_run_is_toy_sized_in_its_own_folder(tmp_path, capsys):
    """--quick's estimates are the plan's minutes scaled by the work (epochs x images), plus a
    run's start; its runs go to OUT-DIR/quick."""
    lines = printed(capsys, "--dry-run", "--quick", "--only", "sweep30", "--seeds", "1",
                    "--out-dir", tmp_path, "--jobs", "4")
    assert lines[-1] == "2 of 2 runs to do, about 0.0 core-hours (0h00m on 4 workers); nothing run"
    assert all(f"--out {tmp_path / 'quick'}{os.sep}" in line for line in lines[:-1])
    rows = reproduce.ROWS
    assert reproduce.quick_minutes(rows["teacher"]) == pytest.approx(180 * 0.1 / 600 + 0.1)
    assert reproduce.quick_minutes(rows["small3"]) == pytest.approx(3 * 1 / 300 + 0.1)
    runs = reproduce.runs_of([rows["teacher"]], [1], str(tmp_path), None, None, [], quick=True)
    assert reproduce.minutes_of(runs[0], runs) == reproduce.quick_minutes(rows["teacher"])


def experiment(run, runs):
    """What a run of the plan trains, as its script reads its flags (the last of a flag wins):
    all but the seed and file names; the teacher as the experiment that made it."""
    flags = {}
    for word in run.command[2:]:
        if word.startswith("--"):
            name, flags[word] = word, ()
        else:
            flags[name] += (word,)
    for skipped in ("--seed", "--out", "--checkpoint-every", "--data-dir", "--teacher"):
        flags.pop(skipped, None)
    teacher = next((experiment(t, runs) for t in runs if reproduce.key(t) == run.needs), None)
    return run.command[1], tuple(sorted(flags.items())), teacher


def test_no_two_rows_of_the_quick_plan_are_one_experiment(tmp_path):
    """--quick's shorter runs must keep the rows apart, or tables.py sees each seed twice."""
    runs = reproduce.runs_of(reproduce.PLAN, [1], str(tmp_path), None, None, [], quick=True)
    rows = {}
    for run in runs:
        rows.setdefault(experiment(run, runs), []).append(run.row.name)
    assert [names for names in rows.values() if len(names) > 1] == []


def test_quick_never_writes_the_repositorys_readme(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        reproduce.main(["--quick", "--readme", os.path.join(ROOT, "README.md"), "--print",
                        "--out-dir", str(tmp_path / "runs")])
    assert exit.value.code == 2 and "--quick makes toy tables" in capsys.readouterr().err
    assert reproduce.parse_args(["--quick"]).readme is None  # the tables only printed


def test_file_names_are_the_scripts_own(tmp_path):
    """Where the scripts write results and resume states: checkpoint.json_path_of,
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
        assert run.results == [checkpoint.json_path_of(o) for o in outs]
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


def test_help_prints():
    result = call("--help")
    assert result.returncode == 0, result.stderr
    assert "--quick" in result.stdout and "10% of the images" in result.stdout


def test_bad_input_from_the_shell(tmp_path):
    result = call("--only", "nope", "--out-dir", tmp_path / "runs")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("reproduce.py: error: unknown --only row 'nope'; the rows: ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_the_readme_block_is_the_plan(tmp_path):
    """The reproduce block lives in docs/REPRODUCE.md, the README's page on reproducing."""
    page = tmp_path / "REPRODUCE.md"
    shutil.copy(os.path.join(ROOT, "docs", "REPRODUCE.md"), page)
    reproduce.main(["--write", str(page)])
    assert page.read_text() == open(os.path.join(ROOT, "docs", "REPRODUCE.md")).read(), \
        "docs/REPRODUCE.md's reproduce block is stale: run python tools/reproduce.py --write docs/REPRODUCE.md"
    assert reproduce.readme_block() in page.read_text()
