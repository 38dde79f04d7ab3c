"""Each script end to end on a tiny synthetic IDX dataset, and every bad input of the core."""
import json
import math
import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch

import distillation
import hints
import checkpoint
import cli
import layers
import train
from conftest import FAST, ROOT, read_json, write_mnist

REQUIRED = {"test_errors", "per_class_errors", "test_count", "epochs", "seed", "params",
            "samples_per_s", "wall_s", "config", "history"}


def test_train_writes_checkpoint_and_results_that_agree(trained):
    for kind in ("teacher", "small"):
        record = read_json(trained[kind])
        assert REQUIRED <= set(record)
        assert record["test_count"] == 100 and record["epochs"] == len(record["history"])
        assert len(record["per_class_errors"]) == 10
        assert sum(record["per_class_errors"]) == record["test_errors"]
        assert record["test_errors"] < 20, "the synthetic digits are easy"
        net = checkpoint.load_net(trained[kind], "cpu")        # weights_only load, rebuilt from config
        import dataset
        errors, per_class, _ = layers.evaluate(net, *dataset.load(trained["data"], False))
        assert (errors, per_class) == (record["test_errors"], record["per_class_errors"])
    teacher = read_json(trained["teacher"])
    assert teacher["config"]["dropout_input"] == 0.2 and teacher["jitter"] == 2
    assert teacher["config"]["max_norm"] == 3.5 and teacher["params"]["name"] == "LocalParams"
    small = read_json(trained["small"])
    assert small["config"]["dropout_input"] == 0 and small["jitter"] == 0
    assert small["config"]["hidden"] == [32, 32] and small["params"]["batch_size"] == 50


def test_same_seed_gives_identical_results(trained, tmp_path):
    again = train.main(["--model", "small", "--data-dir", trained["data"],
                        "--out", str(tmp_path / "again.pt"), *FAST])
    assert again["history"] == read_json(trained["small"])["history"]
    a = torch.load(trained["small"], weights_only=True)["state_dict"]
    b = torch.load(str(tmp_path / "again.pt"), weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_distillation_end_to_end_with_sweep(trained, tmp_path, capsys):
    out = str(tmp_path / "student.pt")
    records = distillation.main(["--data-dir", trained["data"], "--teacher", trained["teacher"],
                                 "--baseline", trained["small"][:-3] + ".json", "--out", out,
                                 "--T", "1", "4", *FAST])
    printed = capsys.readouterr().out
    assert [r["T"] for r in records] == [1.0, 4.0]
    for T in ("1", "4"):
        record = read_json(str(tmp_path / f"student_T{T}.pt"))
        assert REQUIRED <= set(record) and record["alpha"] == 0.9 and record["T"] == float(T)
        assert record["teacher_test_errors"] == trained["teacher_record"]["test_errors"]
        assert record["config"]["dropout_input"] == 0 and record["params"]["distill_lr"] == distillation.tp.LocalParams().distill_lr
        assert record["params"]["T"] == record["T"] and record["train_count"] == 400
    # the summary puts the teacher, the small net (from its JSON) and both students side by side
    summary = printed[printed.index("\nmodel "):].strip()
    assert f"{trained['small_record']['test_errors']:>11}" in summary.splitlines()[2] and "small" in summary.splitlines()[2]
    assert "T=1" in summary and "T=4" in summary and printed.count("epoch    3/3") == 2


def test_distillation_with_a_jittered_transfer_set_and_soft_targets_only(trained, tmp_path):
    [record] = distillation.main(["--data-dir", trained["data"], "--teacher", trained["teacher"],
                                  "--out", str(tmp_path / "s.pt"), "--jitter", "2",
                                  "--alpha", "1", "--lr", "0.02", "--T", "20", *FAST])
    assert record["jitter"] == 2 and record["alpha"] == 1 and record["params"]["distill_lr"] == 0.02
    assert math.isfinite(record["history"][-1]["loss"])


def test_scripts_run_from_the_command_line(trained, tmp_path):
    out = str(tmp_path / "cli.pt")
    done = subprocess.run([sys.executable, "distillation.py", "--data-dir", trained["data"],
                           "--teacher", trained["teacher"], "--out", out, "--T", "20", *FAST],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "distilled 784-32-32-10 T=20" in done.stdout and os.path.exists(out)
    help_text = subprocess.run([sys.executable, "train.py", "--help"], cwd=ROOT,
                               capture_output=True, text=True, timeout=60).stdout
    for flag in ("--epochs", "--lr", "--seed", "--device", "--subset", "--out", "--max-norm"):
        assert flag in help_text


def test_dry_run_writes_nothing(trained, tmp_path):
    record = train.main(["--model", "small", "--data-dir", trained["data"], "--dry-run",
                         "--out", str(tmp_path / "dry.pt"), "--hidden", "16"])
    assert record["epochs"] == 1 and os.listdir(tmp_path) == []


def expect_bad_input(capsys, main, argv, *words, out=None):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    if out is not None:
        assert not os.path.exists(out) and not os.path.exists(out[:-3] + ".json")
    return err


BAD_DISTILL = [
    (["--T", "0"], "--T"), (["--T", "-2"], "--T"), (["--T", "nan"], "--T"), (["--T", "inf"], "--T"),
    (["--T", "20", "0"], "--T"), (["--alpha", "1.5"], "--alpha"), (["--alpha", "-0.1"], "--alpha"),
    (["--hidden", "0"], "--hidden"), (["--hidden", "800", "-1"], "--hidden"),
    (["--holdout", "-1"], "--holdout"), (["--holdout", "400"], "--holdout"),
    (["--subset", "0"], "--subset"), (["--subset", "1.5"], "--subset"), (["--subset", "nan"], "--subset"),
    (["--omit", "10"], "class 10"), (["--only", "-1"], "class -1"),
    (["--omit", *map(str, range(10))], "all 10 classes"), (["--omit", "3", "--only", "7"], "not allowed"),
    (["--epochs", "0"], "--epochs"), (["--lr", "-1"], "--lr"), (["--batch-size", "0"], "--batch-size"),
    (["--device", "tpu"], "--device"), (["--params", "huge"], "--params"), (["--T", "warm"], "--T"),
    (["--alpha", "nan"], "--alpha"), (["--T", "20", "20.0"], "twice"), (["--out", "student"], ".pt"),
    (["--T", "1", "4", "--out", "a.json"], ".pt"), (["--seed", str(2 ** 64)], "--seed"),
    (["--seed", "-1"], "--seed"), (["--momentum", "0"], "--nesterov"),
]


@pytest.mark.parametrize("argv,word", BAD_DISTILL)
def test_bad_distillation_input(trained, tmp_path, capsys, argv, word):
    out = str(tmp_path / "x.pt")
    expect_bad_input(capsys, distillation.main, ["--data-dir", trained["data"], "--teacher",
                                                 trained["teacher"], "--out", out, *argv],
                     word, out=out)


@pytest.mark.parametrize("argv,word", [(["--hidden", "0"], "--hidden"), (["--model", "big"], "--model"),
                                       (["--omit", "12"], "class 12"), (["--jitter", "-1"], "--jitter"),
                                       (["--dropout-input", "1"], "--dropout-input"),
                                       (["--max-norm", "nan"], "--max-norm"),
                                       (["--epoch", "3"], "--epoch 3"),      # no prefix matching
                                       (["--precision", "fp8"], "--precision")])
def test_bad_train_input(trained, tmp_path, capsys, argv, word):
    out = str(tmp_path / "x.pt")
    model = [] if "--model" in argv else ["--model", "teacher"]
    expect_bad_input(capsys, train.main, ["--data-dir", trained["data"], "--out", out, *model,
                                          *argv], word, out=out)


def broken_teachers(trained, folder):
    """(path, word expected in the message) for each kind of unusable teacher checkpoint."""
    good = open(trained["teacher"], "rb").read()
    cases = {"missing.pt": None, "truncated.pt": good[:len(good) // 2],
             "garbage.pt": os.urandom(2000), "text.pt": b"hello, not a checkpoint"}
    ckpt = torch.load(trained["teacher"], weights_only=True)
    mismatched = dict(ckpt, config=dict(ckpt["config"], hidden=[1200, 1200]))
    diverged = dict(ckpt, state_dict={k: v * float("nan") for k, v in ckpt["state_dict"].items()})
    other_task = {"state_dict": layers.MLP(hidden=[8], in_features=100).state_dict(),
                  "config": layers.MLP(hidden=[8], in_features=100).config()}
    cifar = layers.CNN(channels=[4], hidden=[8], in_shape=(3, 32, 32))
    cifar_teacher = {"state_dict": cifar.state_dict(), "config": cifar.config()}
    paths = []
    for name, content in cases.items():
        if content is not None:
            (folder / name).write_bytes(content)
        paths.append((str(folder / name), "missing" if content is None else "not a readable"))
    for name, obj, word in (("mismatch.pt", mismatched, "do not fit"),
                            ("other.pt", other_task, "takes 100 pixels"),
                            ("cifar.pt", cifar_teacher, "takes 3072 pixels"),
                            ("nan.pt", diverged, "non-finite"),
                            ("bare_state_dict.pt", ckpt["state_dict"], "not a readable")):
        torch.save(obj, str(folder / name))
        paths.append((str(folder / name), word))
    return paths


def test_unusable_teacher_checkpoints(trained, tmp_path, capsys):
    out = str(tmp_path / "x.pt")
    for path, word in broken_teachers(trained, tmp_path):
        err = expect_bad_input(capsys, distillation.main, ["--data-dir", trained["data"],
                                                           "--teacher", path, "--out", out], out=out)
        assert path in err and (word in err or (word == "missing" and "no checkpoint" in err)), err


def test_mnist_absent_without_network(tmp_path, capsys, monkeypatch):
    def offline(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")
    monkeypatch.setattr(socket, "getaddrinfo", offline)
    out = str(tmp_path / "x.pt")
    err = expect_bad_input(capsys, train.main, ["--data-dir", str(tmp_path / "nodata"),
                                                "--out", out, "--model", "small"], "MNIST", out=out)
    assert "--data-dir" in err and "could not be downloaded" in err
    assert not os.path.exists(tmp_path / "nodata"), "a failed download leaves no empty folder"


def corrupt(path, kind):
    import numpy as np
    from conftest import write_idx
    if kind == "truncated":
        with open(path, "r+b") as f:
            f.truncate(1000)
    elif kind == "empty":
        open(path, "wb").close()
    elif kind == "garbage header":
        with open(path, "wb") as f:
            f.write(os.urandom(64))
    elif kind == "20x20 images":
        write_idx(path, np.zeros((50, 20, 20)))
    elif kind == "label 12":
        write_idx(path, np.full(50, 12))


@pytest.mark.parametrize("name,kind", [("train-images", "truncated"), ("train-images", "empty"),
                                       ("t10k-images", "garbage header"),
                                       ("train-images", "20x20 images"), ("train-labels", "label 12")])
def test_corrupt_mnist_files(tmp_path, capsys, name, kind):
    root = write_mnist(str(tmp_path / "bad"), 50, 20)
    corrupt(os.path.join(root, "MNIST", "raw", f"{name}-idx{3 if 'images' in name else 1}-ubyte"), kind)
    out = str(tmp_path / "x.pt")
    expect_bad_input(capsys, train.main, ["--data-dir", root, "--out", out, "--model", "small"],
                     "MNIST", out=out)


def test_a_filter_that_leaves_no_training_image(tmp_path, capsys):
    root = write_mnist(str(tmp_path / "three_classes"), n_train=3, n_test=20)   # labels 0, 1, 2
    out = str(tmp_path / "x.pt")
    expect_bad_input(capsys, train.main, ["--data-dir", root, "--only", "3", "--out", out, "--model", "small"],
                     "no training images", out=out)


def test_cuda_without_gpu_and_unwritable_output(trained, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    expect_bad_input(capsys, train.main, ["--data-dir", trained["data"], "--device", "cuda",
                                          "--model", "small", "--out", str(tmp_path / "x.pt")],
                     "no CUDA GPU")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    expect_bad_input(capsys, train.main, ["--data-dir", trained["data"], "--model", "small",
                                          "--out", str(blocker / "x.pt")], "output folder")
    (tmp_path / "folder.pt").mkdir()
    expect_bad_input(capsys, train.main, ["--data-dir", trained["data"], "--model", "small",
                                          "--out", str(tmp_path / "folder.pt")], "is a folder")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    expect_bad_input(capsys, train.main, ["--data-dir", trained["data"], "--device", "cuda:3",
                                          "--model", "small", "--out", str(tmp_path / "x.pt")],
                     "only 1 GPU")


def test_train_asks_for_the_role(trained, capsys):
    err = expect_bad_input(capsys, train.main, ["--data-dir", trained["data"]], "--model")
    assert "required" in err


def test_a_disk_that_refuses_the_results_is_one_line(trained, tmp_path, capsys, monkeypatch):
    def full_disk(obj, f):
        raise OSError(28, "No space left on device", f.name)
    monkeypatch.setattr(torch, "save", full_disk)
    out = str(tmp_path / "x.pt")
    err = expect_bad_input(capsys, train.main, ["--data-dir", trained["data"], "--model", "small",
                                                "--out", out, *FAST], "No space left", out=out)
    assert "cannot write" in err


def test_bad_input_from_the_command_line_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "distillation.py", "--T", "-1", "--out",
                           str(tmp_path / "x.pt")], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--T" in done.stderr
    assert os.listdir(tmp_path) == []


def count_teacher_forwards(trained, jitter, **recipe):
    import dataset
    teacher = checkpoint.load_net(trained["teacher"], "cpu")
    calls = []
    teacher.register_forward_hook(lambda module, inputs, output: calls.append(len(inputs[0])))
    train_set = dataset.load(trained["data"], True)
    student = train.init_net({"hidden": [16, 16]}, 0, "cpu")
    params = distillation.tp.LocalParams(**{"distill_epochs": 3, "distill_batch_size": 100,
                                            "T": 20.0, "alpha": 0.9, **recipe})
    distillation.distill(student, teacher, train_set, dataset.load(trained["data"], False),
                         params, 0, jitter=jitter)
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training
    return calls


def test_teacher_logits_are_computed_once_unless_the_transfer_set_is_jittered(trained):
    assert count_teacher_forwards(trained, jitter=0) == [400]           # once, all 400 images
    assert count_teacher_forwards(trained, jitter=2) == [100] * 12      # every batch, 3 epochs


def test_a_student_trains_in_minibatches_of_its_own_batch_size(trained, tmp_path):
    # distill_batch_size is the student's; batch_size (the teacher's and small net's) is not read
    assert count_teacher_forwards(trained, 2, distill_epochs=1, batch_size=100,
                                  distill_batch_size=40) == [40] * 10
    [record] = distillation.main(["--data-dir", trained["data"], "--teacher", trained["teacher"],
                                  "--out", str(tmp_path / "s.pt"), "--T", "20", "--epochs", "1",
                                  "--hidden", "32", "--batch-size", "80"])
    assert record["params"]["distill_batch_size"] == 80
    assert record["params"]["batch_size"] == distillation.tp.LocalParams().batch_size == 100
    assert distillation.tp.LocalParams().distill_batch_size == 50
    assert distillation.tp.PaperParams().distill_batch_size == 100


def test_teacher_dropout_teaches_each_batch_by_another_member_of_its_ensemble(trained):
    import dataset
    teacher = checkpoint.load_net(trained["teacher"], "cpu")
    calls = []
    teacher.register_forward_hook(lambda module, inputs, output: calls.append(
        (module.training, inputs[0].clone(), output.clone())))
    train_set = dataset.load(trained["data"], True)
    params = distillation.tp.LocalParams(distill_epochs=1, distill_batch_size=100, teacher_dropout=True)
    distillation.distill(train.init_net({"hidden": [16, 16]}, 0, "cpu"), teacher, train_set,
                         dataset.load(trained["data"], False), params, 0)
    assert [(training, len(x)) for training, x, _ in calls] == [(True, 100)] * 4
    assert not teacher.training, "the teacher is left as it was found: the mean net"
    with torch.no_grad():
        for _, x, sampled in list(calls):  # dropout on: not the mean net's logits, nor repeatable
            assert not torch.allclose(sampled, teacher(x), atol=1e-3)
            assert not torch.allclose(sampled, teacher.train()(x), atol=1e-3)
            teacher.eval()


def test_teacher_dropout_needs_a_teacher_with_dropout(trained, tmp_path, capsys):
    out = str(tmp_path / "x.pt")
    expect_bad_input(capsys, distillation.main, ["--data-dir", trained["data"], "--teacher",
                                                 trained["small"], "--teacher-dropout", "1",
                                                 "--out", out, *FAST], "--teacher-dropout",
                     "no dropout", out=out)


def test_divergence_stops_with_exit_3_and_writes_nothing(trained, tmp_path, capsys):
    out = str(tmp_path / "x.pt")
    with pytest.raises(SystemExit) as stop:
        train.main(["--model", "small", "--data-dir", trained["data"], "--out", out,
                    "--lr", "1e30", *FAST])
    err = capsys.readouterr().err
    assert stop.value.code == 3 and "epoch 1" in err and len(err.strip().splitlines()) == 1
    assert os.listdir(tmp_path) == []


def test_max_norm_is_applied_during_training(trained, tmp_path):
    out = str(tmp_path / "t.pt")
    train.main(["--model", "teacher", "--data-dir", trained["data"], "--out", out,
                "--max-norm", "0.3", *FAST])
    net = checkpoint.load_net(out, "cpu")
    for layer in net.layers[:-1]:
        norms = layer.weight.norm(dim=1)
        assert norms.max().item() <= 0.3 * (1 + 1e-5) and (norms > 0.299).any()
    assert net.layers[-1].weight.norm(dim=1).max().item() > 0.3   # output layer is free


def test_alpha_zero_student_is_bit_identical_to_the_small_net(trained, tmp_path):
    """Same seed, same start, same data order: distilling with alpha = 0 is hard-label training."""
    student = str(tmp_path / "student.pt")
    distillation.main(["--data-dir", trained["data"], "--teacher", trained["teacher"], "--out",
                       student, "--alpha", "0", "--lr", "0.03", "--T", "5",
                       "--distill-warmup-steps", "0", *FAST])
    a = torch.load(student, weights_only=True)["state_dict"]
    b = torch.load(trained["small"], weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert read_json(student)["history"] == read_json(trained["small"])["history"]


def test_paper_recipe_runs_with_damped_momentum(trained, tmp_path):
    record = train.main(["--model", "teacher", "--params", "paper", "--data-dir", trained["data"],
                         "--out", str(tmp_path / "p.pt"), "--epochs", "2", "--hidden", "32"])
    assert record["params"]["name"] == "PaperParams" and record["config"]["init_std"] == 0.01
    assert record["config"]["max_norm"] == pytest.approx(15 ** 0.5)
    assert all(math.isfinite(h["loss"]) for h in record["history"])


def test_damped_momentum_matches_the_2012_update():
    """v <- p v - (1 - p) lr g; w <- w + v, from the second step on (PyTorch's SGD takes the
    first gradient undamped)."""
    from training_params import PaperParams
    w = torch.nn.Parameter(torch.zeros(3))
    params = PaperParams()
    optimizer = train.make_optimizer(torch.nn.Linear(1, 1), params, 10.0)
    optimizer = torch.optim.SGD([w], **{k: optimizer.defaults[k] for k in
                                        ("lr", "momentum", "dampening", "nesterov")})
    grads = [torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.5, 1.0, -1.0]), torch.tensor([2., 0., 1.])]
    v, ref = 10.0 * -grads[0], 10.0 * -grads[0]          # the undamped first step
    for i, g in enumerate(grads):
        w.grad = g.clone()
        optimizer.step()
        if i:
            v = 0.5 * v - 0.5 * 10.0 * g
            ref = ref + v
    assert optimizer.defaults["momentum"] == optimizer.defaults["dampening"] == 0.5
    assert torch.allclose(w.detach(), ref)


def test_class_filters_reach_training(trained, tmp_path):
    record = train.main(["--model", "small", "--data-dir", trained["data"], "--omit", "3", "7",
                         "--out", str(tmp_path / "o.pt"), *FAST])
    assert record["train_count"] == 320 and record["omit"] == [3, 7]
    record = train.main(["--model", "small", "--data-dir", trained["data"], "--only", "7", "8",
                         "--subset", "0.5", "--out", str(tmp_path / "o2.pt"), *FAST])
    assert record["train_count"] == 40


def test_a_malformed_baseline_file_is_shown_as_missing(trained, tmp_path, capsys):
    baseline = tmp_path / "baseline.json"
    baseline.write_text("[1, 2, 3]")
    distillation.main(["--data-dir", trained["data"], "--teacher", trained["teacher"], "--baseline",
                       str(baseline), "--out", str(tmp_path / "s.pt"), *FAST])
    assert f"no results at {baseline}" in capsys.readouterr().out


def test_a_short_demo_on_a_subset_learns(trained, tmp_path):
    """The warmup is capped at a quarter of the run: one epoch of a tenth of the images still
    spends most of its steps at full rate (with 1200 warmup steps it never left the start)."""
    [record] = distillation.main(["--data-dir", trained["data"], "--teacher", trained["teacher"],
                                  "--out", str(tmp_path / "d.pt"), "--subset", "0.5",
                                  "--epochs", "1", "--hidden", "32", "--batch-size", "10",
                                  "--lr", "0.05"])
    assert record["params"]["distill_warmup_steps"] == 1200
    # 20 steps, 5 of them warmup: 54 errors of 100; with all 1200 warmup steps it made 82
    assert record["test_errors"] < 70


def test_holdout_is_a_fixed_split_kept_out_of_training(trained, tmp_path):
    import dataset
    images, labels = dataset.load(trained["data"], True)
    (kept, kept_labels), (held, held_labels) = dataset.holdout_split(images, labels, 100)
    assert len(held) == 100 and len(kept) == 300
    rows = {tuple(r.tolist()) for r in images}
    assert {tuple(r.tolist()) for r in kept} | {tuple(r.tolist()) for r in held} == rows
    assert not {tuple(r.tolist()) for r in kept} & {tuple(r.tolist()) for r in held}
    again = dataset.holdout_split(images, labels, 100)[1][0]
    assert torch.equal(held, again), "the same images for every run"
    [record] = distillation.main(["--data-dir", trained["data"], "--teacher", trained["teacher"],
                                  "--out", str(tmp_path / "h.pt"), "--holdout", "100", *FAST])
    assert record["holdout"] == 100 and record["val_count"] == 100 and record["train_count"] == 300
    assert all("val_errors" in h for h in record["history"])
    net = checkpoint.load_net(str(tmp_path / "h.pt"), "cpu")
    assert record["val_errors"] == layers.evaluate(net, held, held_labels)[0]
    small = train.main(["--model", "small", "--data-dir", trained["data"], "--holdout", "100",
                        "--out", str(tmp_path / "s.pt"), *FAST])
    assert small["train_count"] == 300 and small["history"][-1]["val_errors"] == small["val_errors"]


def test_the_baseline_must_have_the_students_width(trained, tmp_path, capsys):
    out = str(tmp_path / "s.pt")
    distillation.main(["--data-dir", trained["data"], "--teacher", trained["teacher"], "--out", out,
                       "--baseline", trained["small"][:-3] + ".json", "--hidden", "16",
                       "--epochs", "1", "--batch-size", "50"])
    printed = capsys.readouterr().out
    assert "is a 784-32-32-10 net, not the student's" in printed
    assert "python train.py --model small --hidden 16 16 --seed 1" in printed


def test_default_names_carry_the_seed_and_what_sets_a_run_apart():
    import argparse
    args = argparse.Namespace(seed=3, holdout=0, subset=1.0, dataset="mnist")
    assert cli.default_out(args, "student", {"hidden": [800, 800]}, "_20") == \
        os.path.join("runs", "distilled_model_800_20_s3.pt")
    args = argparse.Namespace(seed=1, holdout=10000, subset=0.03, dataset="mnist")
    assert cli.default_out(args, "small", {"hidden": [300, 300]}, tag="wo3") == \
        os.path.join("runs", "small_model_wo3_300_sub0.03_h10000_s1.pt")
    args = argparse.Namespace(seed=2, holdout=0, subset=1.0, dataset="fashion-mnist")
    cnn = {"arch": "cnn", "channels": [16, 32], "kernel": 3, "batch_norm": True, "hidden": [128]}
    assert cli.default_out(args, "teacher", cnn) == \
        os.path.join("runs", "cumbersome_model_fashion-mnist_cnn16x32k3bn-128_s2.pt")


def test_help_puts_everyday_flags_first_with_their_defaults():
    help_text = subprocess.run([sys.executable, "train.py", "--help"], cwd=ROOT,
                               capture_output=True, text=True, timeout=60).stdout
    help_text = help_text[help_text.index("options:"):]  # the flags, after the usage line
    assert help_text.index("--model") < help_text.index("--epochs") < help_text.index("--max-norm")
    assert "(default: 1)" in help_text and "teacher 600" in help_text
    no3 = subprocess.run([sys.executable, "distillation_no_three.py", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60).stdout
    assert "sweep" not in no3
    assert "--distill-warmup-steps" not in help_text, "train.py trains no student"


def test_missing_real_data_skips_outside_ci_and_fails_under_it(tmp_path, monkeypatch):
    from conftest import real_mnist_or_skip
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="real MNIST not found"):
        real_mnist_or_skip(str(tmp_path))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="real MNIST not found"):
        real_mnist_or_skip(str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="real FashionMNIST not found"):
        real_mnist_or_skip(str(tmp_path), "FashionMNIST", "fashion-mnist")


def test_data_dir_finds_the_real_data_and_says_so_in_the_skip_message(tmp_path, monkeypatch):
    import conftest
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    assert conftest.data_root("MNIST", "no-such-copy") == str(tmp_path)   # not found: still named
    with pytest.raises(pytest.skip.Exception, match="set DATA_DIR to a folder holding MNIST/raw"):
        monkeypatch.delenv("CI", raising=False)
        conftest.real_mnist_or_skip(str(tmp_path))
    conftest.write_mnist(str(tmp_path))
    assert conftest.data_root("MNIST", "mnist") == str(tmp_path)          # found: it comes first


def test_a_data_dir_one_level_too_deep_gets_the_folder_to_pass(tmp_path, capsys):
    root = conftest_write(tmp_path)
    for deep in ("MNIST", os.path.join("MNIST", "raw")):
        expect_bad_input(capsys, train.main, ["--model", "small", "--data-dir",
                                              os.path.join(root, deep), "--out", str(tmp_path / "x.pt")],
                         f"try --data-dir {os.path.normpath(root)}", out=str(tmp_path / "x.pt"))


def conftest_write(tmp_path):
    from conftest import write_mnist
    return write_mnist(str(tmp_path / "data"))


def test_a_finished_run_is_not_overwritten_without_overwrite(trained, tmp_path, capsys):
    out = str(tmp_path / "s.pt")
    argv = ["--model", "small", "--data-dir", trained["data"], "--out", out, "--epochs", "1",
            "--hidden", "16"]
    first = train.main(argv)
    before = open(out[:-3] + ".json").read()
    with pytest.raises(SystemExit) as stop:
        train.main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a finished run" in err and "--overwrite" in err
    assert open(out[:-3] + ".json").read() == before
    again = train.main(argv + ["--overwrite"])
    assert again["test_errors"] == first["test_errors"] and "1 epoch," in capsys.readouterr().out


def test_default_names_of_runs_with_other_settings_differ_and_repeat():
    parser = distillation.make_distill_parser("")
    hints.add_hint_flags(parser)

    def name(*argv):
        args = parser.parse_args(list(argv))
        return cli.default_out(args, "student", {"hidden": [800, 800]}, "_20")
    plain = name("--T", "20")
    assert plain == os.path.join("runs", "distilled_model_800_20_s1.pt")   # the recipe's defaults
    variants = [name("--alpha", "1"), name("--alpha", "1", "--lr", "0.01"), name("--lr", "0.01"),
                name("--teacher", "other.pt"), name("--jitter", "2"), name("--params", "paper")]
    assert len(set(variants + [plain])) == len(variants) + 1
    assert name("--alpha", "1") == name("--alpha", "1")                     # a resume finds it
    assert name("--epochs", "3") == os.path.join("runs", "distilled_model_800_20_e3_s1.pt")
    assert name("--lr", "0.01", "--alpha", "1", "--precision", "bf16") == \
        os.path.join("runs", "distilled_model_800_20_a1_lr0.01_bf16_s1.pt")
    hashed = name("--teacher", "other.pt", "--epochs", "3")                 # spelled, then a hash
    assert hashed.startswith(os.path.join("runs", "distilled_model_800_20_e3_")) and len(hashed) == len(
        os.path.join("runs", "distilled_model_800_20_e3_abcdef_s1.pt"))


def test_importing_runs_no_subprocess_and_the_code_version_is_read_at_the_start():
    spy = ("import subprocess, sys; sys.path.insert(1, 'tools'); calls = []; run = subprocess.run\n"
           "subprocess.run = lambda *a, **k: calls.append(a) or run(*a, **k)\n"
           "import benchmark, checkpoint, cli, dataset, deployment, distillation, "
           "distillation_no_three, evaluate, hints, layers, records, tables, train\n"
           "assert not calls, calls\n"
           "version = records.code_version_at_start(); assert len(calls) == 2\n"
           "assert records.CODE_VERSION == version and len(calls) == 2\n")
    done = subprocess.run([sys.executable, "-c", spy], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr


COPY = ["distillation.py", "checkpoint.py", "cli.py", "dataset.py", "errors.py", "hints.py",
        "layers.py", "losses.py", "records.py", "train.py", "training_params.py"]  # as the README lists them


def project_imports(name, found=None):
    """The project modules a module imports, directly or through each other."""
    import ast
    found = set() if found is None else found
    with open(os.path.join(ROOT, name)) as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                 [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
        for module in names:
            path = f"{module.split('.')[0]}.py"
            if os.path.exists(os.path.join(ROOT, path)) and path not in found:
                found.add(path)
                project_imports(path, found)
    return found


def test_distillation_py_runs_when_copied_with_exactly_the_modules_it_imports(trained, tmp_path):
    assert project_imports("distillation.py") | {"distillation.py"} == set(COPY)
    readme = " ".join(open(os.path.join(ROOT, "README.md")).read().split())
    assert " ".join(f"{name}" for name in COPY) in readme.replace("`", "")
    for name in COPY:
        shutil.copy(os.path.join(ROOT, name), tmp_path / name)
    shutil.copy(trained["teacher"], tmp_path / "teacher.pt")
    done = subprocess.run([sys.executable, "distillation.py", "--data-dir", trained["data"],
                           "--teacher", "teacher.pt", "--epochs", "1", "--subset", "0.5",
                           "--hidden", "16", "--out", "s.pt"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.load(open(tmp_path / "s.json"))["train_count"] == 200


def test_the_training_path_stands_on_five_floors_with_no_arrow_back():
    """Ground (no project imports), one plumbing floor whose modules import none of each other,
    then train, distillation, distillation_no_three: a module's floor is 1 + its highest import's."""
    import ast
    modules = [name[:-3] for name in os.listdir(ROOT) if name.endswith(".py")]

    def imports(module):
        with open(os.path.join(ROOT, f"{module}.py")) as f:
            tree = ast.parse(f.read())
        return {a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for a in node.names if a.name in modules} | {
            node.module for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module in modules}

    def floor(module, seen=()):
        assert module not in seen, f"an import circle through {module}"
        return 1 + max([floor(m, seen + (module,)) for m in imports(module)], default=0)
    floors = {m: floor(m) for m in modules}
    assert {m for m, f in floors.items() if f == 1} >= {"layers", "dataset", "training_params",
                                                       "losses", "errors"}
    assert {floors[m] for m in ("checkpoint", "cli", "records")} == {2}
    assert [floors[m] for m in ("train", "distillation", "distillation_no_three")] == [3, 4, 5]
    assert max(floors.values()) == 5
