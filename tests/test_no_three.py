"""distillation_no_three.py: the transfer set, the bias shift, the test-free shift, end to end."""
import os

import numpy as np
import pytest
import torch
import torch.nn as nn

import dataset
import distillation_no_three as no3
import checkpoint
import layers
import train
from conftest import FAST, read_json, write_idx, write_mnist
from layers import MLP
from test_scripts import broken_teachers, expect_bad_input


def run(trained, tmp_path, *argv, data=None):
    out = str(tmp_path / "student.pt")
    records = no3.main(["--data-dir", data or trained["data"], "--teacher", trained["teacher"],
                        "--out", out, *FAST, *argv])
    return out, records


def test_shift_changes_exactly_the_intended_biases():
    net = MLP(hidden=[20, 20], init_std=0.1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    shifted = no3.shift_biases(net, [7, 8], -7.6)
    after = shifted.state_dict()
    for key, value in before.items():
        assert torch.equal(net.state_dict()[key], value), "the original is untouched"
        if key != "layers.2.bias":
            assert torch.equal(after[key], value), key
    delta = after["layers.2.bias"] - before["layers.2.bias"]
    expected = torch.zeros(10)
    expected[[7, 8]] = -7.6
    assert torch.allclose(delta, expected, atol=1e-6) and delta[[0, 1, 2, 3, 4, 5, 6, 9]].eq(0).all()


class Fixed(nn.Module):
    """A 'net' whose logits are its input plus a constant offset per class."""
    def __init__(self, offset):
        super().__init__()
        self.offset = torch.as_tensor(offset, dtype=torch.float32)

    def forward(self, x):
        return x + self.offset


def test_frequency_matched_shift_against_a_hand_computed_case():
    # The teacher's logits are the images; the student is the teacher with class 3 lowered by
    # 2.5, so it predicts 3 less often, and raising its bias by 2.5 restores the teacher's count.
    images = torch.randn(2000, 10, generator=torch.Generator().manual_seed(0)) * 2
    teacher, student = Fixed(torch.zeros(10)), Fixed(torch.tensor([0, 0, 0, -2.5] + [0] * 6))
    wanted = (images.argmax(1) == 3).sum().item()
    assert no3.predicted_count(teacher, images, [3]) == wanted
    shift = no3.frequency_matched_shift(student, images, [3], wanted)
    assert ((images + student.offset + torch.eye(10)[3] * shift).argmax(1) == 3).sum() >= wanted
    # the smallest such shift: just below it the student predicts fewer 3s
    assert ((images + student.offset + torch.eye(10)[3] * (shift - 1e-3)).argmax(1) == 3).sum() < wanted
    assert 0 < shift <= 2.5 + 1e-6
    # with the kept classes lowered instead (the --only case), the shift comes out negative
    student78 = Fixed(torch.tensor([0.0] * 7 + [3.0, 3.0, 0.0]))
    wanted78 = no3.predicted_count(teacher, images, [7, 8])
    assert no3.frequency_matched_shift(student78, images, [7, 8], wanted78) < 0
    assert no3.frequency_matched_shift(student, images, [3], 0) == 0.0


def test_transfer_sets_hold_only_the_kept_classes(trained, tmp_path, monkeypatch):
    seen = []
    fit = train.fit
    monkeypatch.setattr(train, "fit", lambda net, train_set, *a, **k: (
        seen.append(sorted(set(train_set[1].tolist()))), fit(net, train_set, *a, **k))[1])
    run(trained, tmp_path, "--dry-run")
    assert len(seen) == 2 and all(classes == [0, 1, 2, 4, 5, 6, 7, 8, 9] for classes in seen)
    seen.clear()
    run(trained, tmp_path, "--dry-run", "--only", "7", "8")
    assert seen == [[7, 8], [7, 8]]


def test_end_to_end_without_threes(trained, tmp_path, capsys):
    out, (student, small) = run(trained, tmp_path)
    printed = capsys.readouterr().out
    assert "fixed shift" in printed and "frequency-matched shift" in printed
    assert student["model"] == "student" and small["model"] == "small"
    assert student["missing_classes"] == [3] and student["fixed_shift"] == 3.5
    names = ["student", "student_shift", "student_autoshift", "student_baseline",
             "student_baseline_shift", "student_baseline_autoshift"]
    written = sorted(os.listdir(tmp_path))
    assert written == sorted([f"{n}.{e}" for n in names for e in ("pt", "json")])
    test_set = dataset.load(trained["data"], False)
    as_trained = checkpoint.load_net(out, "cpu")
    for name in names:
        path = str(tmp_path / f"{name}.pt")
        record, net = read_json(path), checkpoint.load_net(path, "cpu")  # loads like any checkpoint
        assert layers.evaluate(net, *test_set)[0] == record["test_errors"]
        threes = (test_set[1] == 3).sum().item()
        assert record["missing_class_count"] == threes
        assert record["missing_class_errors"] == record["per_class_errors"][3]
        assert sum(record["missed_predicted_as"].values()) == record["per_class_errors"][3]
    shifted = checkpoint.load_net(str(tmp_path / "student_shift.pt"), "cpu")
    bias_delta = shifted.layers[-1].bias - as_trained.layers[-1].bias
    assert torch.allclose(bias_delta, torch.eye(10)[3] * 3.5)
    variants = student["variants"]
    assert variants["fixed shift"]["bias_shift"] == 3.5
    assert variants["frequency-matched shift"]["bias_shift"] == student["frequency_matched_shift"]
    # the hard-label baseline never saw a 3 and has no soft targets: it cannot say "3"
    assert small["variants"]["as trained"]["missing_class_errors"] == threes


def test_batch_size_and_lr_are_those_of_both_runs_like_epochs(trained, tmp_path):
    _, (student, small) = run(trained, tmp_path, "--batch-size", "40", "--epochs", "1", "--lr",
                              "0.015")
    assert student["params"]["distill_batch_size"] == small["params"]["batch_size"] == 40
    assert student["epochs"] == small["epochs"] == 1
    assert student["params"]["distill_lr"] == small["params"]["lr"] == 0.015
    assert "--epochs, --lr and --batch-size set both runs" in no3.make_parser().format_help()


def garbage_test_set(root, n=100):
    """The tiny data with its test images and labels replaced by noise."""
    write_mnist(root)
    raw = os.path.join(root, "MNIST", "raw")
    rng = np.random.default_rng(99)
    write_idx(os.path.join(raw, "t10k-images-idx3-ubyte"), rng.integers(0, 256, (n, 28, 28)))
    write_idx(os.path.join(raw, "t10k-labels-idx1-ubyte"), rng.integers(0, 10, n))
    return root


def test_the_honest_shift_never_looks_at_the_test_set(trained, tmp_path):
    clean, (student, small) = run(trained, tmp_path / "clean", "--only", "1", "2", "3")
    noisy_root = garbage_test_set(str(tmp_path / "garbage"))
    noisy, (student_g, small_g) = run(trained, tmp_path / "noisy", "--only", "1", "2", "3",
                                      data=noisy_root)
    assert student["fixed_shift"] == -7.6 and student["shifted_classes"] == [1, 2, 3]
    assert student["test_errors"] != student_g["test_errors"], "the test sets differ"
    for a, b in ((student, student_g), (small, small_g)):
        assert a["frequency_matched_shift"] == b["frequency_matched_shift"]
    assert torch.equal(checkpoint.load_net(clean, "cpu").layers[-1].bias,
                       checkpoint.load_net(noisy, "cpu").layers[-1].bias)


@pytest.mark.parametrize("argv,word", [
    (["--omit", "10"], "class 10"), (["--omit", *map(str, range(10))], "all 10 classes"),
    (["--only", *map(str, range(10))], "every class"), (["--omit", "3", "--only", "7"], "not allowed"),
    (["--T", "1", "4"], "unrecognized arguments: 4"), (["--bias-shift", "nan"], "--bias-shift")])
def test_bad_input(trained, tmp_path, capsys, argv, word):
    out = str(tmp_path / "x.pt")
    expect_bad_input(capsys, no3.main, ["--data-dir", trained["data"], "--teacher",
                                        trained["teacher"], "--out", out, *argv], word, out=out)


def test_unusable_teachers(trained, tmp_path, capsys):
    out = str(tmp_path / "x.pt")
    for path, word in broken_teachers(trained, tmp_path):
        err = expect_bad_input(capsys, no3.main, ["--data-dir", trained["data"], "--teacher",
                                                  path, "--out", out], out=out)
        assert path in err


def test_only_counts_its_warmup_in_steps_like_every_run():
    _, run = no3.parse_args(["--only", "7", "8"])
    assert run.distill_warmup_steps == train.tp.LocalParams().distill_warmup_steps == 1200
    _, run = no3.parse_args(["--only", "7", "8", "--distill-warmup-steps", "300"])
    assert run.distill_warmup_steps == 300
