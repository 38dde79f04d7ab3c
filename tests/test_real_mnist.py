"""Real MNIST (../shared/data/mnist): a short smoke run, and the committed models re-evaluated."""
import json
import os

import pytest

import dataset
import train
from conftest import REAL_MNIST, ROOT

MODELS = os.path.join(ROOT, "models")


@pytest.fixture(scope="module")
def test_set():
    return dataset.load_mnist(REAL_MNIST, train=False)


def test_real_mnist_has_the_canonical_counts(test_set):
    _, labels = test_set
    assert labels.bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_one_short_epoch_of_the_small_net_is_under_five_percent(tmp_path):
    record = train.main(["--model", "small", "--data-dir", REAL_MNIST, "--epochs", "1",
                         "--out", str(tmp_path / "smoke.pt")])
    assert record["test_count"] == 10000 and record["test_errors"] < 500


@pytest.mark.parametrize("name", ["cumbersome_model_1200", "small_model_800"])
def test_committed_models_reproduce_their_recorded_errors(test_set, name):
    with open(os.path.join(MODELS, name + ".json")) as f:
        record = json.load(f)
    net = train.load_net(os.path.join(MODELS, name + ".pt"), "cpu")
    errors, per_class, _ = train.evaluate(net, *test_set)
    assert (errors, per_class) == (record["test_errors"], record["per_class_errors"])
    assert record["test_count"] == 10000 and record["omit"] == [] and record["subset"] == 1.0
