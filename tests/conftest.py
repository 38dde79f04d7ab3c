"""Shared fixtures: a tiny synthetic MNIST written as real IDX files, tiny CIFAR-10/100 written as
CIFAR's real pickled batches, and the real data paths (MNIST, Fashion-MNIST)."""
import hashlib
import json
import os
import pickle
import struct
import sys

import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(1, os.path.join(ROOT, "tools"))  # the tools wing: tables, reproduce, benchmark, ...
# the real MNIST and Fashion-MNIST: under $DATA_DIR if set (a root holding MNIST/raw and
# FashionMNIST/raw, torchvision's layout), else the project's offline copies beside the
# repository, else the scripts' default folder, where torchvision downloads them
def data_root(folder, shared):
    candidates = [os.environ.get("DATA_DIR"), os.path.join(ROOT, "..", "shared", "data", shared),
                  os.path.join(ROOT, "data")]
    return next((path for path in candidates if path and has_real_data(path, folder)),
                os.environ.get("DATA_DIR") or os.path.join(ROOT, "data"))

if "OMP_NUM_THREADS" not in os.environ:  # the user's choice stands; else the 2 cores CI has
    torch.set_num_threads(2)


def has_real_data(root, folder="MNIST"):
    raw = os.path.join(root, folder, "raw")
    return os.path.isdir(raw) and any(name.startswith("t10k-images") for name in os.listdir(raw))


REAL_MNIST = data_root("MNIST", "mnist")
REAL_FASHION = data_root("FashionMNIST", "fashion-mnist")


@pytest.fixture
def real_mnist():
    return real_mnist_or_skip(REAL_MNIST)


@pytest.fixture
def real_fashion():
    return real_mnist_or_skip(REAL_FASHION, "FashionMNIST", "fashion-mnist")


def real_mnist_or_skip(root, folder="MNIST", shared="mnist"):
    """The real MNIST's (or FashionMNIST's) root. Missing, it skips the test with one line
    saying where it looked, or fails it under CI (CI=true), where the data is part of the setup."""
    if has_real_data(root, folder):
        return root
    places = [os.environ.get("DATA_DIR"), os.path.join(ROOT, "..", "shared", "data", shared),
              os.path.join(ROOT, "data")]
    looked = " and ".join(os.path.normpath(os.path.join(p, folder, "raw")) for p in places if p)
    message = (f"real {folder} not found in {looked}; set DATA_DIR to a folder holding "
               f"{folder}/raw (torchvision's layout), or, with a network, download it into data/: "
               f"python -c \"from torchvision.datasets import {folder}; {folder}('data', download=True)\"")
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)

FAST = ["--epochs", "3", "--hidden", "32", "--batch-size", "50"]


def write_idx(path, array):
    """IDX as in LeCun's spec: 0, 0, type 0x08 (ubyte), ndim; big-endian int32 dims; bytes."""
    with open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 8, array.ndim))
        f.write(struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.astype(np.uint8).tobytes())


def synthetic_digits(n, seed):
    """Class c lights a 6x6 block at its own place, plus noise: easy to learn, not trivial."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(n, 28, 28))
    for i, c in enumerate(labels):
        r, col = 4 + 6 * (c // 4), 4 + 6 * (c % 4)
        images[i, r:r + 6, col:col + 6] = 255
    return images, labels


def write_mnist(root, n_train=400, n_test=100):
    raw = os.path.join(root, "MNIST", "raw")
    os.makedirs(raw, exist_ok=True)
    for split, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = synthetic_digits(n, seed)
        write_idx(os.path.join(raw, f"{split}-images-idx3-ubyte"), images)
        write_idx(os.path.join(raw, f"{split}-labels-idx1-ubyte"), labels)
    return root


@pytest.fixture(scope="session")
def tiny_mnist(tmp_path_factory):
    return write_mnist(str(tmp_path_factory.mktemp("tiny_mnist")))


@pytest.fixture(scope="session")
def trained(tiny_mnist, tmp_path_factory):
    """A tiny teacher and small net, trained once by the real scripts."""
    import train
    out = tmp_path_factory.mktemp("models")
    teacher = str(out / "teacher.pt")
    small = str(out / "small.pt")
    record_t = train.main(["--model", "teacher", "--data-dir", tiny_mnist, "--out", teacher,
                           "--epochs", "4", "--hidden", "64", "--batch-size", "50"])
    record_s = train.main(["--model", "small", "--data-dir", tiny_mnist, "--out", small, *FAST])
    return {"teacher": teacher, "small": small, "teacher_record": record_t, "small_record": record_s,
            "data": tiny_mnist, "dir": out}


def read_json(pt_path):
    with open(pt_path[:-3] + ".json") as f:
        return json.load(f)


def write_cifar(root, monkeypatch, hundred=False, n_train=60, n_test=20):
    """Tiny CIFAR-10 (or -100) in CIFAR's on-disk format: pickled dicts of uint8 rows of 3072
    values (1024 red, then green, then blue) and their labels, plus the meta file. torchvision
    checks each file's md5, so the test makes torchvision expect these files' sums."""
    import torchvision.datasets as tvd
    cls = tvd.CIFAR100 if hundred else tvd.CIFAR10
    folder = os.path.join(root, cls.base_folder)
    os.makedirs(folder, exist_ok=True)
    key, classes = ("fine_labels", 100) if hundred else ("labels", 10)
    rng = np.random.default_rng(2)

    def batch(name, n):
        labels = (np.arange(n) % classes).tolist()
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        data[:, 0] = np.array(labels, dtype=np.uint8)  # red channel's first pixel = the label
        path = os.path.join(folder, name)
        with open(path, "wb") as f:
            pickle.dump({"data": data, key: labels}, f)
        return [name, hashlib.md5(open(path, "rb").read()).hexdigest()]

    train_names = [name for name, _ in cls.train_list]
    train_list = [batch(name, n_train // len(train_names)) for name in train_names]
    test_list = [batch(cls.test_list[0][0], n_test)]
    meta_path = os.path.join(folder, cls.meta["filename"])
    with open(meta_path, "wb") as f:
        pickle.dump({cls.meta["key"]: [f"class{i}" for i in range(classes)]}, f)
    monkeypatch.setattr(cls, "train_list", train_list)
    monkeypatch.setattr(cls, "test_list", test_list)
    monkeypatch.setattr(cls, "meta", dict(cls.meta, md5=hashlib.md5(open(meta_path, "rb").read()).hexdigest()))
    return root
