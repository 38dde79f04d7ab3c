"""Interruption, resume, determinism and the divergence guard, on the tiny synthetic MNIST."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import dataset
import layers
import checkpoint
import cli
import errors
import train
import training_params as tp
from conftest import ROOT, read_json
from test_scripts import expect_bad_input

# a teacher (dropout, max-norm, jitter: every random stream in play), long enough to interrupt
TEACHER = ["--model", "teacher", "--hidden", "96", "--batch-size", "20", "--epochs", "40"]


def command(data, out, *extra):
    return [sys.executable, "train.py", "--data-dir", data, "--out", out, *TEACHER, *extra]


def finish(data, out, *extra):
    done = subprocess.run(command(data, out, *extra), cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def reference(tiny_mnist, tmp_path_factory):
    """The uninterrupted run every interrupted one must reproduce bit for bit."""
    out = str(tmp_path_factory.mktemp("reference") / "teacher.pt")
    finish(tiny_mnist, out, "--checkpoint-every", "3", "--keep-resume")
    return out


def assert_same_run(a, b):
    sa, sb = (torch.load(p, weights_only=True)["state_dict"] for p in (a, b))
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and torch.equal(sa[key], sb[key]), key
    assert read_json(a)["history"] == read_json(b)["history"]


def start_and_wait_for_checkpoint(data, out, *extra):
    process = subprocess.Popen(command(data, out, *extra), cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not os.path.exists(checkpoint.resume_path(out)):
        assert process.poll() is None and time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.005)
    return process


def test_sigkill_then_resume_gives_the_same_weights(tiny_mnist, reference, tmp_path):
    out = str(tmp_path / "teacher.pt")
    process = start_and_wait_for_checkpoint(tiny_mnist, out, "--checkpoint-every", "3")
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved = torch.load(checkpoint.resume_path(out), weights_only=True)
    assert 3 <= saved["epoch"] < 40 and not os.path.exists(out), "killed partway"
    done = finish(tiny_mnist, out, "--checkpoint-every", "3", "--resume")
    assert f"resumed from {checkpoint.resume_path(out)}: after epoch {saved['epoch']}" in done.stdout
    assert_same_run(reference, out)
    assert not os.path.exists(checkpoint.resume_path(out)), "a finished run leaves no resume state"


def test_ctrl_c_checkpoints_mid_epoch_and_says_how_to_resume(tiny_mnist, reference, tmp_path):
    out = str(tmp_path / "teacher.pt")
    process = start_and_wait_for_checkpoint(tiny_mnist, out, "--checkpoint-every", "3")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err and checkpoint.resume_path(out) in err
    saved = torch.load(checkpoint.resume_path(out), weights_only=True)
    assert saved["step"] > 0, "stopped after a step, not at an epoch's end"
    finish(tiny_mnist, out, "--checkpoint-every", "3", "--resume")
    assert_same_run(reference, out)


KILL_ON_THIRD_SAVE = """
import os, signal, sys, torch
sys.path.insert(0, {root!r})
import train
real_save, saves = torch.save, []
def dying_save(obj, f):
    saves.append(1)
    if len(saves) == 3:  # half-way through writing the third checkpoint
        f.write(b"PK\\x03\\x04 half a checkpoint")
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    real_save(obj, f)
torch.save = dying_save
train.main({argv!r})
"""


def test_sigkill_while_writing_a_checkpoint_keeps_the_previous_one(tiny_mnist, reference, tmp_path):
    out = str(tmp_path / "teacher.pt")
    argv = command(tiny_mnist, out, "--checkpoint-every", "3")[2:]
    script = KILL_ON_THIRD_SAVE.format(root=ROOT, argv=argv)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, timeout=300)
    assert done.returncode == -signal.SIGKILL
    saved = torch.load(checkpoint.resume_path(out), weights_only=True)  # intact and loadable
    assert saved["epoch"] == 6 and saved["step"] == 0
    assert any(".tmp" in name for name in os.listdir(tmp_path)), "the write was really cut off"
    finish(tiny_mnist, out, "--checkpoint-every", "3", "--resume")
    assert_same_run(reference, out)


def test_the_same_command_twice_gives_identical_results(tiny_mnist, reference, tmp_path):
    out = str(tmp_path / "teacher.pt")
    finish(tiny_mnist, out, "--checkpoint-every", "0")
    assert_same_run(reference, out)


def test_divergence_names_the_epoch_and_keeps_the_last_good_checkpoint(tiny_mnist, tmp_path):
    train_set, test_set = (dataset.load(tiny_mnist, split) for split in (True, False))
    params = tp.LocalParams(batch_size=50)
    net = train.init_net({"hidden": [16, 16]}, 1, "cpu")
    out = str(tmp_path / "net.pt")
    checkpoints = checkpoint.Checkpoints(out, 2, {"test": 1}, resume=False)
    calls = []

    def loss_that_blows_up_in_epoch_5(net, x, y, extra):
        calls.append(1)
        loss = train.hard_label_loss(net, x, y, extra)
        return loss * float("nan") if len(calls) > 4 * 8 else loss  # 8 steps per epoch

    with pytest.raises(errors.Diverged) as stop:
        train.fit(net, [*train_set, None], test_set, params, epochs=10, lr=0.01, seed=1,
                  batch_loss=loss_that_blows_up_in_epoch_5, checkpoints=checkpoints)
    assert "epoch 5" in str(stop.value) and checkpoints.path in str(stop.value)
    saved = torch.load(checkpoints.path, weights_only=True)
    assert saved["epoch"] == 4 and all(torch.isfinite(t).all() for t in saved["net"].values())


def test_divergence_from_the_command_line(tiny_mnist, tmp_path):
    out = str(tmp_path / "small.pt")
    done = subprocess.run([sys.executable, "train.py", "--model", "small", "--data-dir", tiny_mnist,
                           "--out", out, "--lr", "1e30", "--epochs", "3"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 3 and "epoch 1" in done.stderr and "Traceback" not in done.stderr
    assert not os.path.exists(out) and not os.path.exists(out[:-3] + ".json")


def test_bad_resume_and_checkpoint_input(tiny_mnist, reference, tmp_path, capsys):
    out = str(tmp_path / "teacher.pt")
    base = ["--data-dir", tiny_mnist, "--out", out, *TEACHER]
    expect_bad_input(capsys, train.main, [*base, "--checkpoint-every", "-1"], "--checkpoint-every")
    expect_bad_input(capsys, train.main, [*base, "--resume", "--dry-run"], "--dry-run")
    resume = checkpoint.resume_path(out)
    with open(checkpoint.resume_path(reference), "rb") as f:
        good = f.read()
    unfinished = torch.load(checkpoint.resume_path(reference), weights_only=True)
    unfinished["epoch"] = 12
    torch.save(unfinished, resume)
    before = open(resume, "rb").read()
    expect_bad_input(capsys, train.main, base, "--resume", out=out)  # would overwrite it
    assert open(resume, "rb").read() == before
    with open(resume, "wb") as f:
        f.write(good)
    expect_bad_input(capsys, train.main, [*base, "--resume", "--seed", "2"], "seed", out=out)
    expect_bad_input(capsys, train.main, [*base, "--resume", "--hidden", "50"], "config.hidden",
                     out=out)
    err = expect_bad_input(capsys, train.main, [*base, "--resume", "--lr", "0.5"], "params.lr",
                           out=out)
    assert "now 0.5" in err
    for broken in (good[:len(good) // 2], b"not a checkpoint at all"):
        with open(resume, "wb") as f:
            f.write(broken)
        expect_bad_input(capsys, train.main, [*base, "--resume"], "not a readable", out=out)


def test_resume_without_a_saved_state_starts_afresh(tiny_mnist, tmp_path, capsys):
    out = str(tmp_path / "small.pt")
    record = train.main(["--model", "small", "--data-dir", tiny_mnist, "--out", out, "--epochs", "2",
                         "--hidden", "16", "--resume"])
    assert "starting this run afresh" in capsys.readouterr().out and record["epochs"] == 2


SWEEP = ["--T", "2", "4", "--hidden", "48", "--batch-size", "20", "--epochs", "30",
         "--checkpoint-every", "3"]


def test_a_killed_sweep_resumes_to_the_same_students(trained, tmp_path):
    def sweep(out, *extra):
        return [sys.executable, "distillation.py", "--data-dir", trained["data"], "--teacher",
                trained["teacher"], "--out", out, *SWEEP, *extra]
    reference = str(tmp_path / "reference" / "student.pt")
    os.makedirs(os.path.dirname(reference))
    assert subprocess.run(sweep(reference), cwd=ROOT, capture_output=True).returncode == 0
    out = str(tmp_path / "student.pt")
    process = subprocess.Popen(sweep(out), cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    second = checkpoint.resume_path(out[:-3] + "_T4.pt")
    deadline = time.time() + 120
    while not os.path.exists(second):  # killed during the second run of the sweep
        assert process.poll() is None and time.time() < deadline
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not os.path.exists(out[:-3] + "_T4.pt")
    done = subprocess.run(sweep(out, "--resume"), cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for T in ("2", "4"):
        assert_same_run(f"{reference[:-3]}_T{T}.pt", f"{out[:-3]}_T{T}.pt")


def test_resume_compares_only_the_recipe_fields_the_run_uses(tmp_path):
    net, generator = train.init_net({"hidden": [8]}, 1, "cpu"), torch.Generator()
    def saved_then_resumed(saved_params, resumed_params):
        out = str(tmp_path / f"t{len(os.listdir(tmp_path))}.pt")
        checkpoint.Checkpoints(out, 1, {"params": saved_params}, resume=False).save(
            net, train.make_optimizer(net, tp.LocalParams(), 0.1), generator.get_state(),
            checkpoint.Progress(5, loss_total=torch.zeros(())).at(1, 0))
        return checkpoint.Checkpoints(out, 1, {"params": resumed_params}, resume=True).load(
            net, train.make_optimizer(net, tp.LocalParams(), 0.1), generator, 5)

    teacher = tp.used_by(tp.LocalParams(), "teacher")
    other_student = tp.used_by(tp.LocalParams(distill_lr=0.5, T=4.0), "teacher")
    assert teacher == other_student and "distill_lr" not in teacher and "lr" in teacher
    assert tp.used_by(tp.LocalParams(distill_lr=0.5), "student") != tp.used_by(tp.LocalParams(), "student")
    # a teacher saved with the full recipe, including student fields since changed, resumes
    assert saved_then_resumed(tp.as_dict(tp.LocalParams(distill_lr=0.01)), teacher).epoch == 1
    # a recipe saved before a field existed had that field's default: it resumes as such...
    older = {k: v for k, v in tp.as_dict(tp.LocalParams()).items() if k != "teacher_dropout"}
    student = tp.used_by(tp.LocalParams(), "student")
    assert saved_then_resumed(older, student).epoch == 1
    with pytest.raises(cli.UsageError, match="teacher_dropout"):  # ...and not as another value
        saved_then_resumed(older, tp.used_by(tp.LocalParams(teacher_dropout=True), "student"))
    # a student saved before distill_batch_size existed trained at its batch_size
    before = {k: v for k, v in tp.as_dict(tp.LocalParams(batch_size=100)).items()
              if k != "distill_batch_size"}
    assert saved_then_resumed(before, tp.used_by(tp.LocalParams(distill_batch_size=100),
                                                 "student")).epoch == 1
    with pytest.raises(cli.UsageError, match="distill_batch_size"):  # not at today's default 50
        saved_then_resumed(before, student)
    # a field the teacher uses still tells runs apart
    with pytest.raises(cli.UsageError, match="differs in params"):
        saved_then_resumed(tp.as_dict(tp.LocalParams(lr=0.01)), teacher)


def epochs_of(losses, errors):
    return [{"epoch": i + 1, "loss": l, "test_errors": e} for i, (l, e) in enumerate(zip(losses, errors))]


def test_finite_blow_ups_are_caught_like_nans():
    # results/sweep30_lr0.05, T = 20: the loss jumped in epoch 3 and the net never recovered
    seen = epochs_of([8.805, 6.419], [619, 3396])
    assert "jumped to 42.98" in train.blow_up(seen, {"loss": 42.979, "test_errors": 8990}, 10000)
    # errors back near chance after the run had learned, with a loss that did not triple
    assert "near chance" in train.blow_up(seen, {"loss": 7.0, "test_errors": 8500}, 10000)
    # held-out errors are watched when there are any
    held = [dict(h, val_errors=e) for h, e in zip(seen, [300, 400])]
    assert "near chance" in train.blow_up(held, {"loss": 6.0, "test_errors": 500,
                                                 "val_errors": 900}, 1000)


def test_ordinary_runs_are_not_taken_for_blow_ups():
    assert train.blow_up([], {"loss": 9.0, "test_errors": 9000}, 10000) is None  # a slow start
    # a tiny loss that triples near 0 stays far below where the run began
    assert train.blow_up(epochs_of([0.3, 0.01], [40, 5]), {"loss": 0.033, "test_errors": 6}, 100) is None
    # a net that never got below half wrong (a 7s-and-8s baseline on all ten digits) is not a collapse
    assert train.blow_up(epochs_of([1.0, 0.5], [8100, 8050]), {"loss": 0.4, "test_errors": 8000},
                         10000) is None
    assert train.blow_up(epochs_of([2.0], [500]), {"loss": float("nan")}, 10000) == \
        "training loss became nan"


def test_a_two_stage_hint_run_killed_in_its_second_stage_resumes_to_the_same_student(trained, tmp_path):
    teacher = str(tmp_path / "cnn_teacher.pt")
    import train
    train.main(["--model", "teacher", "--arch", "cnn", "--channels", "4", "6", "--kernel", "3",
                "--hidden", "8", "--data-dir", trained["data"], "--epochs", "1", "--out", teacher])

    def run(out, *extra):
        return [sys.executable, "distillation.py", "--data-dir", trained["data"], "--teacher", teacher,
                "--arch", "cnn", "--channels", "2", "3", "--kernel", "3", "--hint-weight", "1",
                "--two-stage", "--hint-epochs", "2", "--epochs", "10", "--batch-size", "50",
                "--checkpoint-every", "2", "--out", out, *extra]
    reference = str(tmp_path / "reference" / "student.pt")
    os.makedirs(os.path.dirname(reference))
    assert subprocess.run(run(reference), cwd=ROOT, capture_output=True).returncode == 0
    out = str(tmp_path / "student.pt")
    process = subprocess.Popen(run(out), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not os.path.exists(checkpoint.resume_path(out)):  # the second stage's state
        assert process.poll() is None and time.time() < deadline
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not os.path.exists(out)
    done = subprocess.run(run(out, "--resume"), cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "first stage: the hint alone" not in done.stdout  # its result was saved: not redone
    assert_same_run(reference, out)
    assert read_json(out)["first_stage_history"] == read_json(reference)["first_stage_history"]
    assert len(read_json(out)["first_stage_history"]) == 2
    assert sorted(os.listdir(tmp_path)) == ["cnn_teacher.json", "cnn_teacher.pt", "reference",
                                            "student.json", "student.pt"]


def test_a_run_whose_units_die_stops_naming_the_lr(tiny_mnist, tmp_path):
    # the 2012 recipe's lr 10 killed every ReLU of the teacher in ~20 steps, then ran on at chance
    out = tmp_path / "dead.pt"
    done = subprocess.run([sys.executable, "train.py", "--model", "small", "--params", "paper",
                           "--lr", "1e4", "--epochs", "2", "--hidden", "32", "--data-dir",
                           tiny_mnist, "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("train.py: never learned: every unit of fc")
    assert "lower --lr" in done.stderr and not out.exists() and not (tmp_path / "dead.json").exists()


def test_a_layer_is_dead_only_if_every_unit_is_zero_on_every_image():
    net = layers.build({"hidden": [3, 2]})
    images = torch.rand(5, 784)
    assert train.dead_layer(net, images) is None
    with torch.no_grad():
        net.layers[1].bias.fill_(-1e3)       # fc2 can only output 0 now
    assert train.dead_layer(net, images) == "fc2"
    with torch.no_grad():
        net.layers[1].bias[1] = 1e3           # one unit alive: the layer lives
    assert train.dead_layer(net, images) is None


def test_never_learned_compares_with_always_guessing_one_class():
    class Guess(torch.nn.Module):  # predicts `answer` for every image
        classes = 10
        def __init__(self, answer):
            super().__init__()
            self.answer = answer
        def forward(self, x):
            return torch.nn.functional.one_hot(self.answer(x), 10).float()
    labels = torch.tensor([0] * 6 + [1] * 3 + [2] * 1)
    images = labels.float()[:, None]
    constant = Guess(lambda x: torch.zeros(len(x), dtype=torch.long))
    # 4 wrong, as the commonest class guessed: no better than a fixed guess
    assert "4 of 10 watched images wrong" in train.never_learned(constant, (images, labels), labels)
    right = Guess(lambda x: x[:, 0].long())
    assert train.never_learned(right, (images, labels), labels) is None
    # trained on 1s and 2s only (a 7s-and-8s student, say): judged on those classes' images only
    ones_right = Guess(lambda x: torch.ones(len(x), dtype=torch.long))
    assert train.never_learned(ones_right, (images, labels), torch.tensor([1, 2])) is not None
    assert train.never_learned(right, (images, labels), torch.tensor([1, 2])) is None
    # no better than it was untrained (an easy dataset: a random net beats a fixed guess)
    half = Guess(lambda x: torch.where(x[:, 0] < 1, 0, 2))  # 3 wrong (the 1s)
    assert train.never_learned(half, (images, labels), labels) is None
    assert "or than the untrained net (3)" in train.never_learned(half, (images, labels), labels, 3)


@pytest.fixture(scope="module")
def mnist_1000(tmp_path_factory):  # enough test images to tell chance from a slow start
    from conftest import write_mnist
    return write_mnist(str(tmp_path_factory.mktemp("mnist_1000")), n_train=400, n_test=1000)


def test_a_run_still_at_chance_after_its_first_epoch_stops(mnist_1000, tmp_path):
    done = subprocess.run([sys.executable, "train.py", "--model", "small", "--lr", "1e-9",
                           "--epochs", "3", "--hidden", "32", "--data-dir", mnist_1000, "--out",
                           str(tmp_path / "slow.pt")], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 3 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("train.py: never learned: ")
    assert "watched images wrong after the first epoch, no better than always guessing one class" \
        in done.stderr and "or than the untrained net" in done.stderr and "the likely cause is --lr" in done.stderr
    assert not (tmp_path / "slow.json").exists() and "epoch    2/3" not in done.stdout


def test_a_healthy_short_run_is_not_stopped(mnist_1000, tmp_path):
    record = train.main(["--model", "small", "--epochs", "1", "--hidden", "32", "--batch-size",
                         "50", "--data-dir", mnist_1000, "--out", str(tmp_path / "ok.pt")])
    assert record["epochs"] == 1 and record["test_errors"] < 0.95 * 900


def test_ctrl_c_on_an_epochs_last_step_resumes(tiny_mnist, tmp_path):
    # the state saved after an epoch's last step (step == steps) once made the resume divide by 0
    train_set, test_set = (dataset.load(tiny_mnist, split) for split in (True, False))
    params = tp.LocalParams(batch_size=50)  # 400 images: 8 steps an epoch

    def run(out, interrupt_at=None):
        calls = []

        def loss(net, x, y, extra):
            calls.append(1)
            if len(calls) == interrupt_at:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C during the step: saved after it
            return train.hard_label_loss(net, x, y, extra)
        net = train.init_net({"hidden": [16, 16]}, 1, "cpu")
        checkpoints = checkpoint.Checkpoints(out, 0, {"test": 1}, resume=interrupt_at is None)
        return net, train.fit(net, [*train_set, None], test_set, params, epochs=3, lr=0.01,
                              seed=1, batch_loss=loss, checkpoints=checkpoints)

    reference, (history, _) = run(str(tmp_path / "reference.pt"))
    out = str(tmp_path / "net.pt")
    with pytest.raises(errors.Interrupted, match="in epoch 2 after step 8"):
        run(out, interrupt_at=16)  # the last of epoch 2's 8 steps
    resumed, (resumed_history, _) = run(out)
    assert resumed_history == history
    assert all(torch.equal(a, b) for a, b in zip(reference.state_dict().values(),
                                                 resumed.state_dict().values()))


def test_a_second_run_to_the_same_out_refuses_while_the_first_trains(tiny_mnist, tmp_path, capsys):
    out = str(tmp_path / "teacher.pt")
    first = subprocess.Popen(command(tiny_mnist, out, "--checkpoint-every", "1"), cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not os.path.exists(str(tmp_path / "teacher.lock")):
        assert first.poll() is None and time.time() < deadline, "no lock appeared"
        time.sleep(0.005)
    expect_bad_input(capsys, train.main, command(tiny_mnist, out, "--overwrite")[2:],
                     "is being written by another run", f"process {first.pid}")
    first.communicate(timeout=300)
    assert first.returncode == 0 and os.path.exists(out)
    assert not os.path.exists(str(tmp_path / "teacher.lock")), "a finished run frees its --out"


def test_a_killed_runs_lock_is_taken_over(tiny_mnist, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "small.lock").write_text(str(dead.pid))
    record = train.main(["--model", "small", "--data-dir", tiny_mnist, "--out",
                         str(tmp_path / "small.pt"), "--epochs", "1", "--hidden", "8"])
    assert record["epochs"] == 1 and not (tmp_path / "small.lock").exists()


def test_training_flushes_denormals_to_zero(tiny_mnist):
    torch.set_flush_denormal(False)
    assert (torch.tensor([1e-30]) * 1e-10).item() > 0  # a denormal, kept
    train_set, test_set = (dataset.load(tiny_mnist, split) for split in (True, False))
    train.fit(train.init_net({"hidden": [8]}, 1, "cpu"), [*train_set, None], test_set,
              tp.LocalParams(batch_size=100), epochs=1, lr=0.01, seed=1,
              batch_loss=train.hard_label_loss)
    assert (torch.tensor([1e-30]) * 1e-10).item() == 0.0
