"""evaluate.py: scores saved nets per class on their own dataset's test images, each dataset from
its root; a net it cannot score is one line on stderr, the rest are scored, and it exits 1."""
import json
import os
import shutil

import pytest
import torch

import checkpoint
import evaluate
import layers
from conftest import ROOT

FASHION_NET = os.path.join(ROOT, "models", "small_model_fashion-mnist_128d1.pt")  # shipped


def scored_with_failures(capsys, argv):
    """evaluate.main(argv) that must exit 1: (stdout, stderr's lines)."""
    with pytest.raises(SystemExit) as stop:
        evaluate.main(argv)
    out, err = capsys.readouterr()
    assert stop.value.code == 1, err
    assert "Traceback" not in err
    return out, err.splitlines()


def test_evaluate_scores_checkpoints_per_class(trained, capsys):
    results = evaluate.main([trained["teacher"], trained["small"], "--data-dir", trained["data"],
                             "--confusion"])
    printed = capsys.readouterr().out
    for r, kind in zip(results, ("teacher", "small")):
        assert r["test_errors"] == trained[f"{kind}_record"]["test_errors"]
        assert r["test_per_class_errors"] == trained[f"{kind}_record"]["per_class_errors"]
    assert "true \\ predicted" in printed


def test_evaluate_scores_the_held_out_split_too(trained, tmp_path):
    import dataset
    out = tmp_path / "scores.json"
    [r] = evaluate.main([trained["small"], "--data-dir", trained["data"], "--holdout", "100",
                         "--json", str(out)])
    assert (r["held_out_count"], r["train_rest_count"]) == (100, 300)
    held = dataset.holdout_split(*dataset.load(trained["data"], True), 100)[1]
    assert r["held_out_errors"] == layers.evaluate(checkpoint.load_net(trained["small"], "cpu"), *held)[0]
    assert json.loads(out.read_text())["results"][0]["held_out_errors"] == r["held_out_errors"]


def test_confusion_matrix_by_hand():
    labels, predictions = torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([0, 1, 1, 2, 0, 2])
    assert evaluate.confusion_matrix(labels, predictions, 3).tolist() == [[1, 1, 0], [0, 1, 0],
                                                                          [1, 0, 2]]


def test_a_bad_file_is_one_line_and_the_good_net_is_still_scored(trained, tmp_path, capsys):
    truncated, missing = tmp_path / "truncated.pt", tmp_path / "missing.pt"
    truncated.write_bytes(open(trained["small"], "rb").read()[:200])
    scores = tmp_path / "scores.json"
    out, err = scored_with_failures(capsys, [str(truncated), trained["small"], str(missing),
                                             "--data-dir", trained["data"], "--json", str(scores)])
    assert len(err) == 2
    assert err[0].startswith(f"evaluate.py: not scored: {str(truncated)!r} is not a readable")
    assert err[1].startswith(f"evaluate.py: not scored: no checkpoint at {str(missing)!r}")
    [row] = [line.split() for line in out.splitlines() if line.startswith(trained["small"])]
    assert row[1:4] == ["mnist", "test", str(trained["small_record"]["test_errors"])]
    written = json.loads(scores.read_text())
    assert [r["checkpoint"] for r in written["results"]] == [trained["small"]]
    assert len(written["failed"]) == 2


def test_each_dataset_from_its_own_root(trained, tmp_path, capsys):
    """--fashion-data-dir holds Fashion-MNIST apart from --data-dir's MNIST (here the tiny digits
    under FashionMNIST's name)."""
    fashion = tmp_path / "fashion"
    shutil.copytree(os.path.join(trained["data"], "MNIST"), fashion / "FashionMNIST")
    results = evaluate.main([trained["small"], FASHION_NET, "--data-dir", trained["data"],
                             "--fashion-data-dir", str(fashion)])
    assert [(r["dataset"], r["test_count"]) for r in results] == [("mnist", 100),
                                                                  ("fashion-mnist", 100)]
    capsys.readouterr()
    # the dataset missing (a root that is FashionMNIST/ itself) or one net fitting no dataset:
    # one line each, and the MNIST net is still scored
    out, err = scored_with_failures(capsys, [FASHION_NET, trained["small"], "--data-dir",
                                             trained["data"], "--fashion-data-dir",
                                             str(fashion / "FashionMNIST")])
    assert len(err) == 1 and err[0].startswith(f"evaluate.py: not scored: {FASHION_NET!r}: ")
    assert f"(--fashion-data-dir {str(fashion / 'FashionMNIST')!r})" in err[0]
    assert any(line.startswith(trained["small"]) for line in out.splitlines())
    out, err = scored_with_failures(capsys, [trained["small"], "--dataset", "cifar10",
                                             "--data-dir", trained["data"]])
    assert len(err) == 1 and "but cifar10 has 3x32x32 images" in err[0]


def test_bad_usage_is_one_line_and_exit_code_2(trained, capsys):
    with pytest.raises(SystemExit) as stop:
        evaluate.main([trained["small"], "--no-such-flag"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.splitlines()) == 1 and "--no-such-flag" in err
