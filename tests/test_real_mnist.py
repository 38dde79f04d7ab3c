"""Real MNIST (../shared/data/mnist): a short smoke run, and the committed models re-evaluated
(those of Fashion-MNIST on its real test set)."""
import glob
import json
import os

import pytest

import dataset
import checkpoint
import layers
import train
from conftest import REAL_FASHION, REAL_MNIST, ROOT, real_mnist_or_skip

MODELS = os.path.join(ROOT, "models")


@pytest.fixture(autouse=True)
def needs_real_mnist(real_mnist):
    """Every test here reads the real data: skipped outside CI without it, failed under CI."""


@pytest.fixture
def test_set(needs_real_mnist):
    return dataset.load(REAL_MNIST, train=False)


def test_real_mnist_has_the_canonical_counts(test_set):
    _, labels = test_set
    assert labels.bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_one_short_epoch_of_the_small_net_is_under_five_percent(tmp_path):
    record = train.main(["--model", "small", "--data-dir", REAL_MNIST, "--epochs", "1",
                         "--out", str(tmp_path / "smoke.pt")])
    assert record["test_count"] == 10000 and record["test_errors"] < 500


SHIPPED = sorted(os.path.relpath(path, MODELS)[:-3] for path in
                 glob.glob(os.path.join(MODELS, "*.pt")) + glob.glob(os.path.join(MODELS, "study", "*.pt"))
                 + glob.glob(os.path.join(MODELS, "teachers", "*.pt")))


def test_the_shipped_models_are_there():
    assert {"cumbersome_model_1200", "small_model_800", "distilled_model_800_20"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_model_reproduces_its_recorded_errors(test_set, name):
    with open(os.path.join(MODELS, name + ".json")) as f:
        record = json.load(f)
    data = record.get("dataset", "mnist")
    net = checkpoint.load_net(os.path.join(MODELS, name + ".pt"), "cpu", data)  # weights_only=True
    if data != "mnist":
        test_set = dataset.load(real_mnist_or_skip(REAL_FASHION, "FashionMNIST", "fashion-mnist"),
                                False, "cpu", data)
    errors, per_class, _ = layers.evaluate(net, *test_set)
    assert (errors, per_class) == (record["test_errors"], record["per_class_errors"])
    assert record["test_count"] == 10000 and record["architecture"] == net_architecture(net)


def net_architecture(net):
    from layers import describe
    return describe(net.config())


def test_the_demo_command_finds_the_committed_teacher_and_baseline(capsys, monkeypatch):
    import distillation
    monkeypatch.chdir(ROOT)           # the defaults are relative to the repository root
    [record] = distillation.main(["--T", "20", "--data-dir", REAL_MNIST, "--dry-run"])
    summary = capsys.readouterr().out.split("\nmodel ")[1].splitlines()
    with open(os.path.join(MODELS, "small_model_800.json")) as f:
        small_errors = json.load(f)["test_errors"]
    with open(os.path.join(MODELS, "cumbersome_model_1200.json")) as f:
        teacher_errors = json.load(f)["test_errors"]
    assert summary[1].split()[:2] == ["teacher", "784-1200-1200-10"]
    assert int(summary[1].split()[2]) == teacher_errors == record["teacher_test_errors"]
    assert summary[2].split()[:3] == ["small", "784-800-800-10", str(small_errors)]
    assert record["T"] == 20 and record["teacher"] == os.path.join("models", "cumbersome_model_1200.pt")


def test_evaluate_scores_nets_of_two_datasets_in_one_call(real_mnist, real_fashion, tmp_path):
    import evaluate
    os.symlink(os.path.abspath(os.path.join(real_mnist, "MNIST")), tmp_path / "MNIST")
    os.symlink(os.path.abspath(os.path.join(real_fashion, "FashionMNIST")), tmp_path / "FashionMNIST")
    paths = [os.path.join(ROOT, "models", f"small_model{name}_128d1.pt") for name in ("", "_fashion-mnist")]
    results = evaluate.main([*paths, "--data-dir", str(tmp_path), "--device", "cpu"])
    assert [r["dataset"] for r in results] == ["mnist", "fashion-mnist"]
    for path, r in zip(paths, results):
        with open(path[:-3] + ".json") as f:
            assert r["test_errors"] == json.load(f)["test_errors"]
