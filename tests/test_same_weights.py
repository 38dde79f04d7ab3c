"""The same command and seed give the same weights as a committed earlier run of the code.

`tests/reference/` holds the weights of three short runs on the synthetic digits (a teacher with
dropout, max-norm and jitter; the small net; a student distilled from that teacher with a
held-out split), written by `python tests/test_same_weights.py --write` at commit 3b3056e (the
code before the view cache and --precision), on the machine `hardware.json` names. A refactor
must leave them bit for bit: on a CPU of that name and kernel set the weights must be equal; on
another, whose math kernels may round differently, close.
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from conftest import ROOT, write_mnist  # noqa: E402

sys.path.insert(0, ROOT)
import distillation  # noqa: E402
import records  # noqa: E402
import train  # noqa: E402

REFERENCE = os.path.join(HERE, "reference")
RUNS = {
    "teacher": lambda d, out: train.main(["--model", "teacher", "--data-dir", d, "--out", out,
                                          "--epochs", "2", "--hidden", "32", "--batch-size", "50"]),
    "small": lambda d, out: train.main(["--model", "small", "--data-dir", d, "--out", out,
                                        "--epochs", "2", "--hidden", "32", "--batch-size", "50"]),
    "student": lambda d, out: distillation.main([
        "--data-dir", d, "--out", out, "--teacher", os.path.join(os.path.dirname(out), "teacher.pt"),
        "--holdout", "100", "--epochs", "2", "--hidden", "32", "--batch-size", "50", "--T", "4",
        "--lr", "0.05"]),  # the student lr of LocalParams when the references were written
}


def run_all(folder):
    data = write_mnist(os.path.join(folder, "data"))
    for name, run in RUNS.items():  # in order: the student needs the teacher
        run(data, os.path.join(folder, f"{name}.pt"))


def weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def machine():
    """What decides the rounding of the math kernels: the CPU's name is not enough (machines
    named alike differ in their vector instructions, AVX2 or AVX-512), so its kernel set too."""
    return {"hardware": records.hardware(torch.device("cpu")), "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def test_the_same_weights_as_the_committed_runs(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # as when they were written: a sum split otherwise may round otherwise
    try:
        run_all(str(tmp_path))
    finally:
        torch.set_num_threads(threads)
    with open(os.path.join(REFERENCE, "hardware.json")) as f:
        same_cpu = json.load(f) == machine()
    for name in RUNS:
        ours, theirs = weights(str(tmp_path / f"{name}.pt")), weights(os.path.join(REFERENCE, f"{name}.pt"))
        assert ours.keys() == theirs.keys()
        for key in ours:
            if same_cpu:
                assert torch.equal(ours[key], theirs[key]), f"{name} {key} changed"
            else:
                assert torch.allclose(ours[key], theirs[key], atol=1e-4), f"{name} {key} changed"


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    import tempfile
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as folder:
        run_all(folder)
        for name in RUNS:
            checkpoint = torch.load(os.path.join(folder, f"{name}.pt"), weights_only=True)
            torch.save({"state_dict": checkpoint["state_dict"], "config": checkpoint["config"]},
                       os.path.join(REFERENCE, f"{name}.pt"))
    with open(os.path.join(REFERENCE, "hardware.json"), "w") as f:
        json.dump(machine(), f)
        f.write("\n")
