"""tools/paper_recipe.py: the per-epoch table and the full recipe's cost, checked by hand on
synthetic records; the committed docs page is current."""
import json
import os
import subprocess
import sys

import pytest

import paper_recipe
from conftest import ROOT


def record(model, errors, train_s, **params):
    return {"model": model, "architecture": "784-8-10", "test_errors": errors[-1],
            "epochs": len(errors), "train_s": train_s, "hardware": "CPU X, 2 cores", "threads": 1,
            "params": {"name": "PaperParams", "epochs": 3000, "teacher_epochs": 3000,
                       "distill_epochs": 3000, **params},
            "history": [{"epoch": i + 1, "test_errors": e} for i, e in enumerate(errors)]}


@pytest.fixture
def folder(tmp_path):
    for name, r in {"t": record("teacher", [500, 300], 36.0), "s": record("small", [400, 350], 7.2),
                    "d": record("student", [450], 12.0, distill_epochs=1),
                    "local": {**record("small", [9], 1.0), "params": {"name": "LocalParams"}}}.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(r))
    return tmp_path


def test_tables_by_hand(folder):
    text = paper_recipe.block(paper_recipe.load_runs(str(folder)))  # the LocalParams run is left out
    assert "| 1 | 500 | 400 | 450 |" in text and "| 2 | 300 | 350 |  |" in text
    # 36 s / 2 epochs = 18 s an epoch; the recipe's 3000 epochs (not the record's) = 15.0 h
    assert "| teacher 784-8-10 | 2 | 300 | 18.0 | 3000 epochs | 15.0 h |" in text
    assert "| small 784-8-10 | 2 | 350 | 3.6 | 3000 epochs | 3.0 h |" in text
    assert "| student 784-8-10 | 1 | 450 | 12.0 | 3000 epochs | 10.0 h |" in text


def run(*argv):
    return subprocess.run([sys.executable, "tools/paper_recipe.py", *map(str, argv)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_write_then_check(folder, tmp_path):
    page = tmp_path / "page.md"
    page.write_text("intro\n<!-- paper-recipe:begin -->\nold\n<!-- paper-recipe:end -->\nend\n")
    assert run(folder, "--check", page).returncode == 1
    assert run(folder, "--write", page).returncode == 0
    assert "| 1 | 500 | 400 | 450 |" in page.read_text() and page.read_text().endswith("end\n")
    assert run(folder, "--check", page).returncode == 0


def test_bad_input_is_one_line(tmp_path, folder):
    for argv in ([tmp_path / "nothing"], [tmp_path / "empty"], [folder, "--write", tmp_path / "x.md"]):
        (tmp_path / "empty").mkdir(exist_ok=True)
        done = run(*argv)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    (folder / "t2.json").write_text(json.dumps(record("teacher", [1], 1.0)))
    assert "two teacher runs" in run(folder).stderr


def test_the_committed_page_is_current():
    results = os.path.join(ROOT, "results", "paper_recipe")
    done = run(results, "--check", os.path.join(ROOT, "docs", "PAPER_RECIPE.md"))
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("argv,word", [
    (["--params", "2012"], "--params"), (["--lr", "0"], "--lr"), (["--lr", "inf"], "--lr"),
    (["--momentum", "1"], "--momentum"), (["--momentum-start", "-0.5"], "--momentum-start"),
    (["--max-norm", "-1"], "--max-norm"), (["--max-norm", "nan"], "--max-norm")])
def test_bad_recipe_values_are_one_line(tiny_mnist, tmp_path, capsys, argv, word):
    import train
    from test_scripts import expect_bad_input
    out = str(tmp_path / "t.pt")
    expect_bad_input(capsys, train.main, ["--model", "teacher", "--params", "paper", "--data-dir",
                                          tiny_mnist, "--out", out, *argv], word, out=out)
