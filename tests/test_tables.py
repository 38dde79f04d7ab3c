"""tables.py and study_tables.py: rows grouped over seeds, statistics checked by hand, README block
replaced, only the paper's own setting compared to the paper, --strict refusing marked rows."""
import glob
import json
import os
import subprocess
import sys

import pytest

import study_tables
import tables
from conftest import ROOT


def record(model, seed, errors, T=None, epochs=30):
    r = {"model": model, "architecture": "784-800-800-10", "seed": seed, "test_errors": errors,
         "epochs": epochs, "params": {"name": "LocalParams"}, "wall_s": 120.0, "device": "cpu",
         "hardware": "test cpu, 2 cores", "jitter": 0, "omit": [], "only": [], "subset": 1.0,
         "code_version": "abc1234"}
    if T is not None:
        r.update(T=T, alpha=0.9)
    return r


def test_rows_group_seeds_with_mean_std_and_range(tmp_path):
    runs = [record("small", 1, 140), record("small", 2, 146), record("small", 3, 152),
            record("student", 1, 100, T=20.0), record("student", 2, 110, T=20.0),
            record("small", 1, 170, epochs=5)]
    for i, r in enumerate(runs):
        (tmp_path / f"{i}.json").write_text(json.dumps(r))
    (tmp_path / "notes.json").write_text("[1, 2]")     # not a results file: ignored
    lines = tables.table(tables.load_records([str(tmp_path)])).splitlines()
    assert len(lines) == 2 + 3
    small = next(l for l in lines if "hard labels" in l and ", 30 |" in l)
    # mean 146, sample std sqrt(((-6)^2 + 0 + 6^2) / 2) = 6
    assert "| 146 | 146.0 ± 6.0 | 140-152 | 3 (1, 2, 3) |" in small
    student = next(l for l in lines if "distilled" in l)
    # mean 105, sample std sqrt((25 + 25) / 1) = 7.07
    assert "T=20, alpha=0.9 † | 74 | 105.0 ± 7.1 | 100-110 | 2 (1, 2) |" in student
    assert "170.0 (one seed)" in next(l for l in lines if ", 5 |" in l)


def test_write_replaces_only_the_marked_block(tmp_path):
    readme = tmp_path / "README.md"
    begin, end = "<!-- results:begin -->", "<!-- results:end -->"
    readme.write_text(f"intro\n{begin}\nold\n{end}\nafter\n")
    tables.write_between_markers(str(readme), "new table")
    assert readme.read_text() == f"intro\n{begin}\nnew table\n{end}\nafter\n"


def dark_record(seed, errors, on_missing, shift):
    variants = {name: {"bias_shift": s, "test_errors": e, "missing_class_errors": m,
                       "missing_class_count": 1010, "test_count": 10000}
                for name, s, e, m in (("as trained", 0.0, errors, on_missing),
                                      ("fixed shift", 3.5, errors - 100, 14),
                                      ("frequency-matched shift", shift, errors - 120, 20))}
    return {"model": "student", "architecture": "784-800-800-10", "T": 20.0, "seed": seed,
            "params": {"name": "LocalParams"}, "epochs": 30, "experiment": "wo3",
            "variant": "as trained", "variants": variants, "test_errors": errors}


def test_dark_knowledge_table_over_seeds(monkeypatch):
    monkeypatch.setattr(tables, "SEEDS", 1)  # the judging, apart from the seed count
    lines = study_tables.dark_knowledge_table([dark_record(1, 300, 200, 2.0),
                                         dark_record(2, 310, 180, 3.0)]).splitlines()
    assert len(lines) == 2 + 3
    as_trained, fixed, honest = lines[2:]
    assert "| as trained | 0.00 | 305.0 ± 7.1 (300-310) | 206 |" in as_trained  # same shift: shown once
    assert "| 190.0 ± 14.1 (180-200) of 1010 | 133 | 2 (1, 2) | LocalParams, 30 | MISSED |" in as_trained
    assert fixed.endswith("| LocalParams, 30 | MISSED |") and honest.endswith("| LocalParams, 30 |  |")
    met = study_tables.dark_knowledge_table([dark_record(1, 206, 133, 2.0)]).splitlines()[2]
    assert met.endswith("| LocalParams, 30 | met |"), "at most the paper's numbers is met"
    assert "| fixed shift | 3.50 | 205.0 ± 7.1 (200-210) | 109 | 14 of 1010 |" in fixed
    assert "| frequency-matched shift | 2.50 ± 0.71 (2.00-3.00) |" in honest
    monkeypatch.setattr(tables, "SEEDS", 3)
    pending = study_tables.dark_knowledge_table([dark_record(1, 206, 133, 2.0)]).splitlines()[2]
    assert pending.endswith("| LocalParams, 30 | no verdict yet, 1 of 3 seeds |")


@pytest.mark.parametrize("argv,word", [([], "required"), (["/nonexistent.json"], "nonexistent"), (["tests"], "no results"),
                                       (["results", "--bogus"], "--bogus")])
def test_bad_input_is_one_line_with_exit_2(argv, word):
    done = subprocess.run([sys.executable, "tools/tables.py", *argv], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert word in done.stderr


def test_a_readme_without_the_block_is_refused_and_left_alone(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    with pytest.raises(SystemExit) as stop:
        tables.write_between_markers(str(readme), "table")
    assert stop.value.code == 2 and readme.read_text() == "no markers here\n"


def test_targets_are_judged_on_the_mean_and_the_student_must_beat_each_seeds_small_net(monkeypatch):
    monkeypatch.setattr(tables, "SEEDS", 1)  # the judging, apart from the seed count
    small = [record("small", 1, 140), record("small", 2, 150)]
    good = [record("student", 1, 70, T=20.0), record("student", 2, 76, T=20.0)]   # mean 73
    lines = tables.table(small + good).splitlines()
    assert next(l for l in lines if "distilled" in l).endswith(
        "| ≤ 74, below the small net of each seed: met |")
    assert next(l for l in lines if "hard labels" in l).endswith("| 146 ± 5: met |")
    unpaired = good + [record("student", 3, 60, T=20.0)]                          # mean 68.7
    assert "MISSED" in next(l for l in tables.table(small + unpaired).splitlines() if "distilled" in l)
    worse = [record("student", 1, 72, T=20.0), record("student", 2, 151, T=20.0)]
    assert "MISSED" in next(l for l in tables.table(small + worse).splitlines() if "distilled" in l)
    other_T = [record("student", 1, 200, T=8.0)]
    assert next(l for l in tables.table(other_T).splitlines() if "distilled" in l).endswith("|  |")


def test_a_jittered_student_is_judged_against_the_errors_of_its_own_teacher(monkeypatch):
    monkeypatch.setattr(tables, "SEEDS", 1)  # the judging, apart from the seed count
    def consistent(seed, errors, teacher=63):
        return {**record("student", seed, errors, T=4.0), "jitter": 2, "teacher_test_errors": teacher}
    row = next(l for l in tables.table([consistent(1, 60), consistent(2, 66)]).splitlines()
               if "jitter 2px" in l)
    assert row.split(" | ")[1] == "" and row.endswith("| ≤ its teacher's 63: met |")   # mean 63
    row = next(l for l in tables.table([consistent(1, 60), consistent(2, 67)]).splitlines()
               if "jitter 2px" in l)
    assert row.endswith("| ≤ its teacher's 63: MISSED |")                              # mean 63.5
    mixed = [consistent(1, 60), consistent(2, 60, teacher=70)]   # two teachers: no one goal
    assert all(l.endswith("|  |") for l in tables.table(mixed).splitlines()[2:])


def test_a_temperature_sweep_becomes_its_own_table_by_T_and_width():
    def student(seed, errors, T, width):
        r = record("student", seed, errors, T=T)
        r["architecture"] = f"784-{width}-{width}-10"
        return r
    sweep = [student(s, 100 + 10 * s + int(T), T, 300) for s in (1, 2) for T in (1.0, 8.0, 20.0)]
    sweep += [student(1, 500 + int(T), T, 30) for T in (2.5, 4.0, 20.0)]
    main = [student(1, 90, 20.0, 800), record("small", 1, 140)]
    records = sweep + main
    swept = study_tables.swept_architectures(records)
    assert swept == {"784-300-300-10", "784-30-30-10"}       # 800-800 has one T only
    assert [r for r in records if not study_tables.is_sweep(r, swept)] == main
    lines = study_tables.sweep_table([r for r in records if study_tables.is_sweep(r, swept)]).splitlines()
    assert lines[0] == "| T | distilled 784-300-300-10 † | distilled 784-30-30-10 † |"  # one teacher
    # T = 8: seeds 1 and 2 give 118 and 128: mean 123, sample std 7.07; no 30-unit run at T = 8
    assert lines[5] == "| 8 | 123.0 ± 7.1 (118-128), seeds 1,2 |  |"
    assert lines[3] == "| 2.5 |  | 502, seeds 1 |"
    assert "LocalParams, 30 epochs, alpha 0.9" in lines[-1]


def test_ablations_get_neither_the_papers_number_nor_its_target(monkeypatch):
    monkeypatch.setattr(tables, "SEEDS", 1)  # the judging, apart from the seed count
    small = [record("small", 1, 144), {**record("small", 1, 900), "subset": 0.03}]
    soft_only = {**record("student", 1, 70, T=20.0), "alpha": 1.0}
    scarce = {**record("student", 1, 300, T=20.0), "subset": 0.03}
    lines = tables.table(small + [soft_only, scarce]).splitlines()
    for row in (l for l in lines if "alpha=1," in l or "0.03 of the images" in l):
        assert row.split(" | ")[1] == "" and row.endswith("|  |")
    assert sum("0.03 of the images" in l for l in lines) == 2
    sampled = record("student", 1, 70, T=20.0)
    sampled["params"] = {**sampled["params"], "teacher_dropout": True}
    [row] = [l for l in tables.table([sampled]).splitlines() if "distilled" in l]
    assert "teacher dropout on" in row and row.split(" | ")[1] == "" and row.endswith("|  |")
    assert next(l for l in lines if "hard labels" in l and "0.03" not in l).endswith("| 146 ± 5: met |")


def test_models_table_lists_each_checkpoint_with_its_recorded_errors(tmp_path):
    (tmp_path / "small_model_800.pt").write_bytes(b"weights")
    (tmp_path / "small_model_800.json").write_text(json.dumps(record("small", 1, 141)))
    teacher = {**record("teacher", 1, 63, epochs=300), "architecture": "784-1200-1200-10", "jitter": 2}
    (tmp_path / "cumbersome_model_1200.pt").write_bytes(b"weights")
    (tmp_path / "cumbersome_model_1200.json").write_text(json.dumps(teacher))
    lines = study_tables.models_table(str(tmp_path)).splitlines()
    assert lines[2] == (f"| `{tmp_path}/cumbersome_model_1200.pt` | mnist | teacher 784-1200-1200-10 | 63 | 1 "
                        "| 300 | jitter 2px |")
    assert lines[3].startswith(f"| `{tmp_path}/small_model_800.pt` | mnist | small 784-800-800-10 | 141 | 1 | 30 |")
    (tmp_path / "orphan.pt").write_bytes(b"weights")
    with pytest.raises(SystemExit) as stop:
        study_tables.models_table(str(tmp_path))
    assert stop.value.code == 2


def test_runs_with_another_batch_size_are_another_row_that_says_so():
    # a student's minibatch is distill_batch_size (LocalParams: 50); records written before
    # that field existed kept it in batch_size
    old = [{**record("student", s, 90, T=20.0), "params": {"name": "LocalParams", "batch_size": 100}}
           for s in (1, 2)]
    new = [{**record("student", s, 80, T=20.0),
            "params": {"name": "LocalParams", "batch_size": 100, "distill_batch_size": 50}}
           for s in (1, 2)]
    rows = [l for l in tables.table(old + new).splitlines() if "distilled" in l]
    assert len(rows) == 2 and "batch" not in rows[0] and "80.0 ± 0.0" in rows[0]
    assert "90.0 ± 0.0" in rows[1] and ", batch 100 |" in rows[1]
    teachers = [{**record("teacher", s, 70), "params": {"name": "LocalParams", "batch_size": b}}
                for s, b in ((1, 100), (2, 50))]
    assert [tables.batch_size(r) for r in teachers] == [None, 50]


def test_a_temperature_sweep_at_another_batch_size_is_its_own_column():
    runs = [{**record("student", 1, errors, T=T), "architecture": "784-30-30-10",
             "params": {"name": "LocalParams", "distill_batch_size": batch, "distill_lr": 0.02}}
            for T, batch, errors in ((2.0, 50, 240), (2.0, 100, 250), (4.0, 50, 260))]
    lines = study_tables.sweep_table(runs).splitlines()
    assert lines[0] == "| T | distilled 784-30-30-10 † | distilled 784-30-30-10, batch 100 † |"
    assert lines[2] == "| 2 | 240, seeds 1 | 250, seeds 1 |" and lines[3] == "| 4 | 260, seeds 1 |  |"
    assert "784-30-30-10, batch 100: LocalParams" in lines[-1]


def test_runs_at_different_learning_rates_are_different_rows():
    fast = [{**record("student", s, 100, T=20.0), "params": {"name": "LocalParams", "distill_lr": 0.05}}
            for s in (1, 2)]
    slow = {**record("student", 1, 108, T=20.0), "params": {"name": "LocalParams", "distill_lr": 0.01}}
    lines = [l for l in tables.table(fast + [slow]).splitlines() if "distilled" in l]
    assert len(lines) == 2
    assert "| 100.0 ± 0.0 | 100-100 | 2 (1, 2) | LocalParams, 30, lr 0.05 |" in lines[0] + lines[1]
    assert "| 108.0 (one seed) | 108-108 | 1 (1) | LocalParams, 30, lr 0.01 |" in lines[0] + lines[1]


def study_record(seed, val, test, **params):
    return {**record("student", seed, test, T=params.get("T", 20.0), epochs=60), "holdout": 10000,
            "val_errors": val, "params": {**study_tables.STUDY_BASE, **params}}


def test_study_rows_name_what_differs_and_rank_by_validation_not_test():
    lines = study_tables.study_table([study_record(1, 65, 107), study_record(2, 75, 95),
                                study_record(1, 72, 90, T=4.0),
                                study_record(1, 60, 120, distill_lr=0.02, ema=0.999)]).splitlines()
    arms = [line.split(" | ")[0].strip("| ") for line in lines[2:]]
    # ranked by mean val errors: 60, then 70 (65, 75), then 72, whatever the test errors say
    assert arms == ["distill_lr 0.02, ema 0.999", "none: the starting recipe", "T 4"]
    assert "| 70.0 ± 7.1 (65-75) | 101.0 ± 8.5 (95-107) | 1, 2 |" in lines[3]


def test_study_arms_name_a_teacher_other_than_the_shipped_one():
    shipped = {**study_record(1, 60, 90), "teacher": "models/cumbersome_model_1200.pt"}
    other = {**study_record(1, 50, 80), "teacher": "models/study/teacher_h10k.pt"}
    assert study_tables.study_arm(shipped) == "none: the starting recipe"
    assert study_tables.study_arm(other) == "teacher teacher_h10k.pt"
    # ranked within each teacher: the other teacher's better val errors do not jump the queue
    lines = study_tables.study_table([other, shipped, {**shipped, "val_errors": 70, "seed": 2}])
    assert [l.split(" | ")[0] for l in lines.splitlines()[2:]] == [
        "| none: the starting recipe", "| teacher teacher_h10k.pt"]


def test_teacher_arms_are_named_against_the_recipe_the_study_started_from():
    """LocalParams' teacher at 300 epochs, whatever LocalParams says today."""
    def teacher(seed, val, **params):
        return {**record("teacher", seed, 70, epochs=300), "architecture": "784-1200-1200-10",
                "holdout": 10000, "val_errors": val,
                "params": {**tables.tp.as_dict(tables.tp.LocalParams()), "teacher_epochs": 300,
                           **params}}
    lines = study_tables.study_table([teacher(1, 30), teacher(2, 34), teacher(1, 25, ema=0.999)],
                               study_tables.teacher_arm).splitlines()
    assert lines[2].startswith("| ema 0.999 | 25 | 70 | 1 | 300 |")
    assert lines[3].startswith("| none: the starting recipe | 32.0 ± 2.8 (30-34) |")


def test_an_averaged_run_also_gives_the_arm_without_averaging(tmp_path):
    """An --ema run's raw_* errors are the plain recipe's own: a row of their own, unless that
    very run (same recipe and seed) is there already."""
    def teacher(seed, val, test, **extra):
        params = {**tables.tp.as_dict(tables.tp.LocalParams()), "teacher_epochs": 600}
        return {**record("teacher", seed, test, epochs=600), "architecture": "784-1200-1200-10",
                "holdout": 10000, "val_errors": val, "params": {**params, **extra.pop("params", {})},
                **extra}
    for name, r in {"a": teacher(1, 60, 61, params={"ema": 0.9999}, raw_val_errors=70,
                                 raw_test_errors=71),
                    "b": teacher(2, 64, 66, params={"ema": 0.9999}, raw_val_errors=62,
                                 raw_test_errors=63),
                    "c": teacher(2, 62, 63)}.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(r))
    lines = study_tables.study_table(study_tables.study_records(str(tmp_path)), study_tables.teacher_arm).splitlines()
    assert lines[2].startswith("| teacher_epochs 600, ema 0.9999 | 62.0 ± 2.8 (60-64) | "
                               "63.5 ± 3.5 (61-66) | 1, 2 |")
    # seed 2's raw errors are run c's: counted once
    assert lines[3].startswith("| teacher_epochs 600 | 66.0 ± 5.7 (62-70) | 67.0 ± 5.7 (63-71) | 1, 2 |")
    assert len(lines) == 4


def test_plots_are_drawn_from_the_records(tmp_path):
    pytest.importorskip("matplotlib", reason="plots are an optional extra (pip install matplotlib)")
    import plots
    sweep = [record("student", s, 100 + 10 * s + T, T=float(T)) for s in (1, 2) for T in (1, 4, 20)]
    path = plots.temperature_sweep(sweep, str(tmp_path / "sweep.png"))
    curves = [("small", {**record("small", 1, 140), "history": [{"epoch": e, "test_errors": 300 // e}
                                                                for e in range(1, 6)]})]
    path2 = plots.learning_curves(curves, str(tmp_path / "curves.png"))
    for p in (path, path2):
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_plots_without_matplotlib_is_one_line(monkeypatch, capsys, tmp_path):
    import builtins
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    (tmp_path / "r.json").write_text(json.dumps(record("small", 1, 140)))
    with pytest.raises(SystemExit) as stop:
        tables.main([str(tmp_path), "--plots", str(tmp_path / "figs")])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "pip install matplotlib" in err and len(err.splitlines()) == 1


def test_cnn_table_pairs_each_student_seed_with_its_hard_label_twin():
    def cnn_run(model, seed, errors, **more):
        return {**record(model, seed, errors), "dataset": "fashion-mnist", "architecture": "cnn s",
                "test_count": 10000, "params": {"name": "LocalParams", "lr": 0.03, "distill_lr": 0.03},
                **more}
    kd = dict(T=4.0, alpha=0.9, teacher_architecture="cnn t")
    hint = dict(kd, hint_weight=1.0, hint_layers=["stage2", "stage2"], hint_stages=1, hint_epochs=0)
    runs = [cnn_run("small", 1, 900), cnn_run("small", 2, 920), cnn_run("small", 3, 910),
            cnn_run("student", 1, 880, **kd), cnn_run("student", 2, 890, **kd), cnn_run("student", 3, 900, **kd),
            cnn_run("student", 1, 870, **hint), cnn_run("student", 2, 885, **hint), cnn_run("student", 3, 880, **hint)]
    text = study_tables.cnn_table(runs)
    kd_row = next(line for line in text.splitlines() if line.endswith("lr 0.03 |") and "T=4 |" in line)
    # per seed: 880-900, 890-920, 900-910 = -20, -30, -10: mean -20, sample std 10
    assert "| 890.0 ± 10.0 (880-900) | 8.90 | -20.0 ± 10.0 (-30--10) | 3 (1, 2, 3) |" in kd_row
    # hint vs KD, paired: 10, 5, 20 -> 11.7 ± 7.6; the hint had the fewest errors
    assert ("- fashion-mnist, cnn s: fewest errors with *distilled, T=4 + hint stage2→stage2 x1, "
            "one stage, teacher cnn t* (878.3); the next, *distilled, T=4, teacher cnn t*, makes "
            "11.7 ± 7.6 more per seed") in text


def paired(seed, errors, teacher_seed=None, teacher_epochs=600, **more):
    """A student of seed `seed` that recorded its teacher's run (by default: of its own seed)."""
    teacher_seed = seed if teacher_seed is None else teacher_seed
    run = {"path": f"t{teacher_epochs}_s{teacher_seed}.pt", "seed": teacher_seed,
           "epochs": teacher_epochs, "params": {"name": "LocalParams"}, "holdout": None,
           "code_version": "abc1234"}
    return {**record("student", seed, errors, T=20.0), "teacher": run["path"], "teacher_run": run,
            **more}


def run_tables(tmp_path, runs, *args, paths=None):
    """tables.py on these records, as files in tmp_path/r (its paths too, unless `paths` says
    others): (exit code, stdout, stderr)."""
    folder = tmp_path / "r"
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for i, r in enumerate(runs):
        (folder / f"run{i}.json").write_text(json.dumps(r))
    done = subprocess.run([sys.executable, "tools/tables.py", *map(str, paths or [folder]),
                           *map(str, args)], cwd=ROOT, capture_output=True, text=True)
    return done.returncode, done.stdout, done.stderr


def test_a_seed_paired_row_tabulates_unmarked(tmp_path):
    two = paired(2, 76)
    two["teacher_run"] = {**two["teacher_run"], "holdout": 0}   # the same as not recorded
    code, out, err = run_tables(tmp_path, [paired(1, 70), two, record("small", 1, 140)])
    assert code == 0, err
    [row] = [l for l in out.splitlines() if l.startswith("| distilled")]
    assert row.startswith("| distilled 784-800-800-10, T=20, alpha=0.9, 600-epoch teacher per "
                          "seed | 74 | 73.0 ± 4.2 | 70-76 | 2 (1, 2) |")
    assert "†" not in out and "‡" not in out


def test_a_student_of_another_seeds_teacher_is_refused_and_nothing_written(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:begin -->\nold\n<!-- results:end -->\n")
    code, out, err = run_tables(tmp_path, [paired(1, 70), paired(2, 76, teacher_seed=1)],
                                "--write", readme)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "seed 2" in err and "teacher of seed 1" in err and "run1.json" in err
    assert readme.read_text() == "<!-- results:begin -->\nold\n<!-- results:end -->\n" and not out
    # a teacher without its results JSON: its seed is unknown, so the pairing is not shown
    unknown = paired(1, 70)
    unknown["teacher_run"] = {**unknown["teacher_run"], "seed": None, "epochs": None, "params": None}
    assert run_tables(tmp_path, [unknown])[0] == 2


def test_teachers_of_300_and_600_epochs_split_a_row_and_never_pool(tmp_path):
    """Split in every table that groups students (its own row, column or key); a group that
    still held two recipes would be refused."""
    runs = [paired(1, 70, teacher_epochs=300), paired(2, 72, teacher_epochs=300),
            paired(1, 80), paired(2, 84), record("student", 1, 90, T=20.0)]   # the last: legacy
    rows = [l for l in tables.table(runs).splitlines() if "distilled" in l]
    assert len(rows) == 3
    assert "300-epoch teacher per seed | 74 | 71.0 ± 1.4 |" in rows[0] + rows[1] + rows[2]
    assert "600-epoch teacher per seed | 74 | 82.0 ± 2.8 |" in rows[0] + rows[1] + rows[2]
    assert "alpha=0.9 † | 74 | 90.0 (one seed) |" in rows[0] + rows[1] + rows[2]
    sweep = [{**r, "architecture": "784-30-30-10", "T": T} for r in runs[:3] for T in (1.0, 4.0)]
    head = study_tables.sweep_table(sweep).splitlines()[0]
    assert head == ("| T | distilled 784-30-30-10, 300-epoch teacher per seed | "
                    "distilled 784-30-30-10, 600-epoch teacher per seed |")
    cnn = study_tables.cnn_table([{**r, "test_count": 10000, "params": {**r["params"], "distill_lr": 0.02}}
                            for r in runs[:4]])
    assert len([l for l in cnn.splitlines() if l.startswith("| mnist | student")]) == 2
    assert "*distilled, T=20, 600-epoch teacher per seed*, makes 11.0 ± 1.4 more" in cnn
    with pytest.raises(SystemExit) as stop:
        tables.marks("a row", runs[:3])
    assert stop.value.code == 2


def test_dirty_or_unrecorded_code_is_marked_and_strict_refuses_it(tmp_path):
    runs = [record("small", 1, 140), {**record("small", 2, 150), "code_version": "abc1234-dirty"},
            {**record("small", 1, 900, epochs=5), "code_version": None}, record("teacher", 1, 60),
            paired(1, 70), paired(2, 76)]
    code, out, err = run_tables(tmp_path, runs)
    assert code == 0, err
    rows = [l for l in out.splitlines() if l.startswith("| small")]
    assert all(row.startswith("| small net, hard labels 784-800-800-10 ‡ |") for row in rows)
    assert len(rows) == 2 and out.count("‡") == 3       # two rows and one note
    assert "\n\n‡ from uncommitted or unrecorded code" in out and "†" not in out
    code, out, err = run_tables(tmp_path, runs, "--strict")
    assert code == 2 and len(err.strip().splitlines()) == 1 and not out, err
    assert "--strict" in err and "small net" in err and "run1.json" in err
    # a paired student whose teacher ran uncommitted code is marked too
    teacher_dirty = paired(1, 70)
    teacher_dirty["teacher_run"]["code_version"] = "abc1234-dirty"
    assert tables.marks("a row", [teacher_dirty]) == " ‡"


def test_strict_refuses_a_row_whose_students_all_learned_from_one_teacher(tmp_path):
    legacy = [record("student", 1, 70, T=20.0), record("student", 2, 76, T=20.0)]
    code, out, err = run_tables(tmp_path, legacy)
    assert code == 0 and "alpha=0.9 † |" in out and "\n† not seed-paired" in out, err
    code, out, err = run_tables(tmp_path, legacy, "--strict")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "not seed-paired" in err, err
    assert "run0.json" in err and "run1.json" in err and not out
    assert run_tables(tmp_path, [paired(1, 70), paired(2, 76)], "--strict")[0] == 0


def paper_and_other_rows(tmp_path, **other):
    """The main table made from seeds 1-3 of the small net and of the student, once in the paper's
    setting and once with `other` (files in tmp_path): {label: (paper, target)} of each row."""
    runs = []
    for more in ({}, other):
        runs += [{**record("small", s, 146 + s), **more} for s in (1, 2, 3)]
        runs += [{**paired(s, 70 + s), **more} for s in (1, 2, 3)]
    code, out, err = run_tables(tmp_path, runs)
    assert code == 0 and "†" not in out and "‡" not in out, err
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in out.splitlines() if line.startswith(("| small", "| distilled"))]
    rows = {cells[0]: (cells[1], cells[-1]) for cells in rows}
    assert len(rows) == 4 and rows["small net, hard labels 784-800-800-10"] == ("146", "146 ± 5: met")
    assert rows["distilled 784-800-800-10, T=20, alpha=0.9, 600-epoch teacher per seed"] == (
        "74", "≤ 74, below the small net of each seed: met")           # 72 and below 147-149
    return rows


def test_a_fashion_mnist_row_is_not_held_to_the_papers_mnist_number(tmp_path):
    rows = paper_and_other_rows(tmp_path, dataset="fashion-mnist")
    assert rows["small net, hard labels 784-800-800-10, fashion-mnist"] == ("", "")
    assert rows["distilled 784-800-800-10, T=20, alpha=0.9, fashion-mnist, 600-epoch teacher "
                "per seed"] == ("", "")


def test_a_row_with_held_out_images_is_not_held_to_the_papers_number(tmp_path):
    rows = paper_and_other_rows(tmp_path, holdout=10000)
    assert rows["small net, hard labels 784-800-800-10, 10000 images held out"] == ("", "")
    assert rows["distilled 784-800-800-10, T=20, alpha=0.9, 10000 images held out, 600-epoch "
                "teacher per seed"] == ("", "")
    # a student of all the images whose teacher held some out is not the paper's either
    student = paired(1, 70)
    student["teacher_run"]["holdout"] = 10000
    [row] = [l for l in tables.table([student]).splitlines() if l.startswith("| distilled")]
    assert "600-epoch teacher per seed, 10000 held out |  |" in row and row.endswith("|  |")


def test_an_averaged_row_is_not_held_to_the_papers_number(tmp_path):
    rows = paper_and_other_rows(tmp_path, params={"name": "LocalParams", "ema": 0.999})
    assert rows["small net, hard labels 784-800-800-10, ema 0.999"] == ("", "")
    assert rows["distilled 784-800-800-10, T=20, alpha=0.9, ema 0.999, 600-epoch teacher per "
                "seed"] == ("", "")


def rows_of_one_table(tables_kind, seeds=(1, 2)):
    """Seed-paired records of committed code that make one row of this kind of table, and where
    tables.py must be pointed to put them there."""
    if tables_kind == "main":
        return [paired(s, 70 + s) for s in seeds], {}
    if tables_kind == "temperature sweep":     # one seed at three temperatures: a sweep
        return [{**paired(1, 100 + int(T)), "architecture": "784-30-30-10", "T": T}
                for T in (1.0, 4.0, 20.0)], {}
    if tables_kind == "dark knowledge":
        return [{**dark_record(s, 300, 200, 2.0), **{k: v for k, v in paired(s, 0).items()
                                                     if k in ("teacher", "teacher_run", "code_version")}}
                for s in seeds], {}
    return ([{**paired(s, 880 + s), "architecture": "cnn s", "dataset": "fashion-mnist",
              "test_count": 10000, "params": {"name": "LocalParams", "distill_lr": 0.03}}
             for s in seeds], {"cnn": True})


@pytest.mark.parametrize("kind", ["main", "temperature sweep", "dark knowledge", "cnn"])
@pytest.mark.parametrize("mark", ["dirty", "unpaired"])
def test_strict_refuses_a_marked_row_of_any_table_in_one_line_naming_its_file(tmp_path, kind, mark):
    runs, where = rows_of_one_table(kind)
    paths = None
    if where:                                  # the CNN table: its runs given to --cnn alone
        (tmp_path / "main.json").write_text(json.dumps(record("small", 1, 140)))
        paths = [tmp_path / "main.json", "--cnn", tmp_path / "r"]
    assert run_tables(tmp_path, runs, "--strict", paths=paths)[0] == 0, "clean rows pass"
    if mark == "dirty":                        # the last run alone ran uncommitted code
        runs[-1] = {**runs[-1], "code_version": "abc1234-dirty"}
    else:                                      # every student learned from one teacher
        runs = [{**{k: v for k, v in r.items() if k != "teacher_run"}, "teacher": "t.pt"} for r in runs]
    code, out, err = run_tables(tmp_path, runs, paths=paths)
    assert code == 0 and {"dirty": "‡", "unpaired": "†"}[mark] in out, err
    code, out, err = run_tables(tmp_path, runs, "--strict", paths=paths)
    assert code == 2 and len(err.strip().splitlines()) == 1 and not out, err
    assert err.startswith("tables.py: error: --strict: ")
    assert tables.NOTES[{"dirty": tables.DIRTY, "unpaired": tables.UNPAIRED}[mark]] in err
    offending = [f"run{len(runs) - 1}.json"] if mark == "dirty" else ["run0.json"]
    assert all(name in err for name in offending), err
    if mark == "dirty":
        assert not any(f"run{i}.json" in err for i in range(len(runs) - 1)), err


def test_check_says_whether_the_readme_is_stale_and_writes_nothing(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:begin -->\nold\n<!-- results:end -->\nafter\n")
    runs = [record("small", 1, 140), record("small", 2, 146)]
    stale = readme.read_text()
    code, out, err = run_tables(tmp_path, runs, "--write", readme, "--check")
    assert code == 1 and err.strip() == (f"{readme}: the generated sections results differ from "
                                         "the results files (rerun with --write)")
    assert readme.read_text() == stale and not out
    assert run_tables(tmp_path, runs, "--write", readme)[0] == 0 and readme.read_text() != stale
    fresh = readme.read_text()
    for check in (["--write", readme, "--check"], ["--check", readme]):
        code, out, err = run_tables(tmp_path, runs, *check)
        assert code == 0 and "match" in out and not err, err
    assert readme.read_text() == fresh
    code, out, err = run_tables(tmp_path, runs + [record("small", 3, 152)], "--check", readme)
    assert code == 1 and "results" in err and readme.read_text() == fresh
    assert run_tables(tmp_path, runs, "--check")[0] == 2    # no README to check


def test_a_seed_paired_consistent_student_aims_at_the_mean_of_its_own_teachers():
    def consistent(seed, errors, teacher):
        return {**paired(seed, errors), "jitter": 2, "teacher_test_errors": teacher}
    runs = [consistent(1, 66, 65), consistent(2, 70, 71), consistent(3, 68, 71)]   # 68 vs 69
    row = next(l for l in tables.table(runs).splitlines() if "jitter 2px" in l)
    assert row.endswith("| ≤ its teachers' mean 69.0: met |")
    runs[0] = consistent(1, 70, 65)                                                # 69.3 vs 69
    row = next(l for l in tables.table(runs).splitlines() if "jitter 2px" in l)
    assert row.endswith("| ≤ its teachers' mean 69.0: MISSED |")


def test_bf16_runs_form_their_own_row():
    runs = [paired(1, 70), paired(2, 76), {**paired(1, 71), "precision": "bf16"}]
    rows = [l for l in tables.table(runs).splitlines() if l.startswith("| distilled")]
    assert len(rows) == 2 and sum("bf16" in row for row in rows) == 1
    assert "| 73.0 ± 4.2 | 70-76 | 2 (1, 2) |" in next(r for r in rows if "bf16" not in r)


def test_the_cost_table_sums_core_hours_once_per_results_file():
    a = {**record("small", 1, 140), "_path": "a.json", "wall_s": 1800, "threads": 1}
    b = {**record("small", 2, 150), "_path": "b.json", "wall_s": 3600, "threads": 2}
    text = tables.cost_table({"results": [a, b, a], "again": [b], "empty": []})
    assert text.splitlines()[2:] == [f"| results | 2 | 2.5 | {a['hardware']} |",
                                     "| all of them | 2 | 2.5 | |"]        # 0.5 + 2 x 1 hours


README_TABLES = ["results/reproduction", "--study", "results/student_study", "--teacher-study",
                 "results/teacher_study", "--cnn", "results/cnn_and_hints",
                 *sorted(glob.glob(os.path.join(ROOT, "results", "reproduction",
                                                "distilled_model_800_20_lr0.02_s*.json"))),
                 "--models", "models", "--demo", "results/demo", "--headline", "--cost"]
# the files that hold the generated blocks: README.md and the docs/ pages
README_FILES = ["README.md", *sorted(os.path.relpath(p, ROOT)
                                     for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))]


def test_the_readme_tables_match_the_committed_results_files():
    done = subprocess.run([sys.executable, "tools/tables.py", *README_TABLES, "--check",
                           *README_FILES], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "all 10 generated sections match" in done.stdout


def test_the_readmes_progress_line_is_one_its_quick_start_printed():
    """The example line under the quick start: the epoch of the results file it names,
    formatted as train.py prints it (loss and test errors from the file's history)."""
    import re
    readme = open(os.path.join(ROOT, "README.md")).read()
    named, line = re.search(r"epoch 10 of `(results/[^`]+\.json)`.*?```\n(epoch [^\n]+)\n```",
                            readme, re.S).groups()
    import train
    record = json.load(open(os.path.join(ROOT, named)))
    assert record["command"].startswith("distillation.py --T 20 ")  # the quick start's command
    entry, epochs = record["history"][9], record["epochs"]
    eta = record["wall_s"] / epochs * (epochs - entry["epoch"])  # speed and ETA: the run's averages
    assert line == train.progress_line(entry, epochs, record["test_count"], record["samples_per_s"], eta)


def headline_records():
    """Teachers of 600 (seed-paired) and 300 epochs, small nets, students of both kinds, and
    no-3 students of both kinds."""
    def teacher(seed, errors, epochs):
        return {**record("teacher", seed, errors, epochs=epochs),
                "architecture": "784-1200-1200-10", "jitter": 2}
    plain = [teacher(1, 65, 600), teacher(2, 74, 600), teacher(1, 63, 300), teacher(2, 78, 300),
             teacher(3, 74, 300), record("small", 1, 141), record("small", 2, 147),
             record("small", 3, 147), paired(1, 105), record("student", 1, 100, T=20.0),
             record("student", 2, 99, T=20.0), record("student", 3, 84, T=20.0)]
    dark = [dark_record(1, 258, 200, 2.0), dark_record(2, 246, 150, 2.0),
            dark_record(3, 221, 130, 2.0),
            {**dark_record(1, 481, 402, 3.5), "teacher_run": paired(1, 0)["teacher_run"]}]
    return plain, [{**r, "code_version": "abc1234"} for r in dark]


def test_the_headline_puts_seed_paired_rows_beside_the_legacy_ones():
    import readme_blocks
    lines = readme_blocks.headline_table(*headline_records()).splitlines()
    assert lines[2] == ("| teacher 784-1200-1200-10, jitter 2px | 67 | 69.5 ± 6.4, 2 seeds, 600 "
                        "epochs: no verdict yet | 71.7 ± 7.8, 3 seeds, 300 epochs: MISSED |")
    assert lines[3] == ("| small net, hard labels 784-800-800-10 | 146 | 145.0 ± 3.5, 3 seeds: met | "
                        "the same runs (it learns from no teacher) |")
    assert lines[4] == ("| distilled 784-800-800-10, T=20, alpha=0.9 | 74 | 105, 1 seed: no "
                        "verdict yet | 94.3 ± 9.0, 3 seeds †: MISSED |")
    # no-3: as trained 258, 246, 221 (241.7 ± 18.9); after the +3.5 shift 100 fewer each
    assert lines[5].endswith("| 206 | 481, 1 seed: no verdict yet | 241.7 ± 18.9, 3 seeds †: MISSED |")
    assert lines[6] == ("| no-3 student, after the paper's bias shift +3.5 | 109 | 381, 1 seed: "
                        "no verdict yet | 141.7 ± 18.9, 3 seeds †: MISSED |")
    assert len(lines) == 7  # no 7s-and-8s runs: no rows for them


def test_the_headline_and_results_blocks_come_from_the_command_line(tmp_path):
    plain, dark = headline_records()
    page = tmp_path / "README.md"
    page.write_text("<!-- headline:begin -->\n<!-- headline:end -->\n"
                    "<!-- results:begin -->\n<!-- results:end -->\n")
    (tmp_path / "dark.md").write_text("<!-- dark-knowledge:begin -->\n<!-- dark-knowledge:end -->\n")
    pages = [page, tmp_path / "dark.md"]
    code, out, err = run_tables(tmp_path, plain + dark, "--headline", "--write", *pages)
    assert code == 0, err
    assert "| 105, 1 seed: no verdict yet | 94.3 ± 9.0, 3 seeds †: MISSED |" in page.read_text()
    assert "| wo3 | distilled 784-800-800-10, T=20 † |" in pages[1].read_text()
    assert run_tables(tmp_path, plain + dark, "--headline", "--check", *pages)[0] == 0


def test_each_block_goes_to_the_one_file_that_holds_its_markers(tmp_path):
    runs = [record("small", 1, 140), record("small", 2, 146)]
    readme, page, other = tmp_path / "README.md", tmp_path / "page.md", tmp_path / "other.md"
    readme.write_text("top\n<!-- results:begin -->\nold\n<!-- results:end -->\n")
    page.write_text("<!-- cost:begin -->\nold\n<!-- cost:end -->\nend\n")
    other.write_text("no blocks here\n")
    code, out, err = run_tables(tmp_path, runs, "--cost", "--write", readme, page, other)
    assert code == 0, err
    assert "| 143.0 ± 4.2 |" in readme.read_text() and "| all of them | 2 |" in page.read_text()
    assert other.read_text() == "no blocks here\n" and page.read_text().endswith("end\n")
    code, out, err = run_tables(tmp_path, runs, "--cost", "--check", readme, page, other)
    assert code == 0 and "all 2 generated sections match" in out, err
    stale = readme.read_text(), page.read_text()
    code, out, err = run_tables(tmp_path, runs + [record("small", 3, 152)], "--cost", "--check",
                                readme, page)
    assert code == 1 and err.splitlines() == [  # one line per stale file
        f"{path}: the generated sections {names} differ from the results files (rerun with --write)"
        for path, names in ((readme, "results"), (page, "cost"))]
    # a block in two files, or in none: one line, exit 2, no file written
    other.write_text("<!-- cost:begin -->\n<!-- cost:end -->\n")
    for files in ([readme, page, other], [readme]):
        code, out, err = run_tables(tmp_path, runs + [record("small", 3, 152)], "--cost",
                                    "--write", *files)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "cost:begin" in err, err
        assert (readme.read_text(), page.read_text()) == stale


def test_the_demo_block_compares_the_demo_with_the_full_run(tmp_path):
    import readme_blocks
    full = {**record("student", 1, 100, T=20.0, epochs=60), "teacher": "models/t.pt",
            "params": {"name": "LocalParams", "distill_epochs": 60}, "_path": "full.json"}
    demo = {**full, "epochs": 3, "test_errors": 139, "teacher_test_errors": 63, "wall_s": 239.1,
            "threads": 2, "_path": "demo.json"}
    small = {**record("small", 1, 141), "_path": "models/small.json"}
    assert readme_blocks.demo_block([demo], [full, {**full, "seed": 2}], [small]) == (
        "`demo.json`: 139 test errors after 3 epochs (teacher 63, small net 141 in "
        "`models/small.json`); the same command and seed at the recipe's 60 epochs made 100, "
        "39 fewer (`full.json`). Wall-clock 4.0 min, 2 threads, on test cpu, 2 cores.")


def test_dkd_students_never_pool_with_kd_students_and_say_so():
    def student(seed, errors, **more):
        return {**record("student", seed, errors, T=4.0), "teacher_architecture": "cnn t",
                "dataset": "fashion-mnist", "test_count": 10000,
                "params": {"name": "LocalParams", "distill_lr": 0.03}, **more}
    dkd = dict(method="dkd", dkd_alpha=1.0, dkd_beta=8.0)
    kd = [student(1, 90), student(2, 96, method="kd")]            # no "method": KD, as before
    runs = kd + [student(1, 80, **dkd), student(2, 84, **dkd), student(1, 70, **{**dkd, "dkd_beta": 2.0})]
    assert [tables.method(r) for r in runs] == ["distilled, T=4"] * 2 + [
        "distilled by DKD (TCKD x1, NCKD x8), T=4"] * 2 + ["distilled by DKD (TCKD x1, NCKD x2), T=4"]
    rows = [l for l in tables.table(runs).splitlines() if l.startswith("| distilled")]
    assert len(rows) == 3
    assert "| 93.0 ± 4.2 | 90-96 | 2 (1, 2) |" in next(r for r in rows if "DKD" not in r)
    assert "| 82.0 ± 2.8 | 80-84 | 2 (1, 2) |" in next(r for r in rows if "NCKD x8" in r)
    assert all(r.split(" | ")[1] == "" for r in rows if "DKD" in r)  # no paper number for DKD
    cnn = [l for l in study_tables.cnn_table(runs).splitlines() if "| student" in l]
    assert len(cnn) == 3 and sum("DKD (TCKD x1, NCKD x8)" in l and "82.0 ± 2.8" in l for l in cnn) == 1
    sweep = [{**r, "T": T, "architecture": "784-30-30-10"} for r in runs[:3] for T in (2.0, 4.0)]
    head = study_tables.sweep_table(sweep).splitlines()[0]
    assert head == ("| T | distilled 784-30-30-10 † | distilled 784-30-30-10 by DKD "
                    "(TCKD x1, NCKD x8) † |")
    assert "by DKD (TCKD x1, NCKD x8)" in study_tables.study_arm({**runs[2], "holdout": 10000})


def test_hint_runs_of_fitnets_recipe_never_pool_with_the_older_ones():
    old = dict(T=4.0, alpha=0.9, hint_weight=1.0, hint_layers=["stage2", "stage2"], hint_stages=1,
               hint_epochs=0)
    new = dict(old, hint_layers=["stage1", "stage1"], hint_version=2)
    runs = [{**record("student", s, 900 - s), "architecture": "cnn s", "dataset": "fashion-mnist",
             "test_count": 10000, "params": {"name": "LocalParams", "distill_lr": 0.03}, **how}
            for s in (1, 2) for how in (old, new, dict(new, hint_stages=2, hint_epochs=3))]
    assert tables.method(runs[0]) == "distilled, T=4 + hint stage2→stage2 x1, one stage"  # as before
    assert tables.method(runs[1]) == "distilled, T=4 + hint v2 stage1→stage1 x1, one stage"
    assert tables.method(runs[2]) == "distilled, T=4, after 3 epochs of hint v2 stage1→stage1 alone (two stages)"
    rows = [l for l in study_tables.cnn_table(runs).splitlines() if "| student" in l]
    assert len(rows) == 3 and all("2 (1, 2)" in row for row in rows)


def test_no_verdict_until_all_three_seeds_are_in():
    small = [record("small", 1, 144), record("small", 2, 146)]
    row = next(l for l in tables.table(small).splitlines() if "hard labels" in l)
    assert row.endswith("| 146 ± 5: no verdict yet, 2 of 3 seeds |")
    row = next(l for l in tables.table(small + [record("small", 3, 170)]).splitlines()
               if "hard labels" in l)
    assert row.endswith("| 146 ± 5: MISSED |")                                  # mean 153.3


@pytest.mark.parametrize("field,value", [("optimizer", "adamw"), ("nesterov", False),
                                         ("lr_schedule", "exp"), ("ema", 0.999),
                                         ("distill_warmup_steps", 0), ("standardize", False)])
def test_recipes_that_differ_in_any_field_never_pool(field, value):
    base = [record("student", 1, 70, T=20.0), record("student", 2, 76, T=20.0)]
    other = record("student", 3, 90, T=20.0)
    other["params"] = {**other["params"], field: value}
    rows = [l for l in tables.table(base + [other]).splitlines() if l.startswith("| distilled")]
    assert len(rows) == 2
    assert any("| 73.0 ± 4.2 | 70-76 | 2 (1, 2) |" in row for row in rows)
    [changed] = [row for row in rows if f"alpha=0.9, {field} {value} † |" in row]  # it says so
    assert changed.split(" | ")[1] == "" and changed.endswith("|  |")       # and is no paper row
    older = record("student", 3, 72, T=20.0)                      # a record before the field
    older["params"] = {k: v for k, v in older["params"].items() if k != field}
    assert len([l for l in tables.table(base + [older]).splitlines()
                if l.startswith("| distilled")]) == 1


def test_teachers_whose_records_differ_only_in_student_fields_pool():
    # a teacher resumed after the student defaults changed records the new ones: same teacher
    one, two = paired(1, 70), paired(2, 76)
    two["teacher_run"] = {**two["teacher_run"], "params": {"name": "LocalParams", "distill_lr": 0.05}}
    rows = [l for l in tables.table([one, two]).splitlines() if l.startswith("| distilled")]
    assert len(rows) == 1 and "| 73.0 ± 4.2 | 70-76 | 2 (1, 2) |" in rows[0]


def test_a_row_with_one_seed_twice_is_refused(tmp_path):
    code, out, err = run_tables(tmp_path, [record("small", 1, 140), record("small", 1, 150),
                                           record("small", 2, 146)])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "seed 1 twice" in err, err
