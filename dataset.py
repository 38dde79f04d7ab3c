"""MNIST as in-memory tensors: loading, class filters, subsets, batched jitter, seeded batches.

Images are uint8 (N, 784) in [0, 255] on the chosen device (the nets convert each batch to
float), a quarter of the memory and memory traffic of float32; labels int64 (N,). No DataLoader:
an epoch is one permutation of the whole tensor, jittered in one batched gather.
"""
import contextlib
import io
import os

import torch

SIDE = 28


class DataError(Exception):
    """MNIST could not be found, downloaded or read; the message says how to fix it."""


def load_mnist(root, train, device="cpu"):
    """(images, labels) of the MNIST train or test split, via torchvision (downloads if absent)."""
    from torchvision.datasets import MNIST
    raw = os.path.join(root, "MNIST", "raw")
    created = [d for d in (root, os.path.join(root, "MNIST"), raw) if not os.path.exists(d)]
    try:
        # torchvision prints its retries on stdout; our caller reports one clear line instead.
        with contextlib.redirect_stdout(io.StringIO()):
            data = MNIST(root=root, train=train, download=True)
    except Exception as e:
        for folder in reversed(created):  # leave no empty folder behind a failed download
            with contextlib.suppress(OSError):
                os.rmdir(folder)
        if created or not os.listdir(raw):
            raise DataError(f"MNIST is not in {raw!r} and could not be downloaded "
                            f"({type(e).__name__}); with no network, put the four "
                            "*-ubyte files there or pass --data-dir") from None
        raise DataError(f"MNIST files in {raw!r} could not be read ({type(e).__name__}); "
                        "delete them to download afresh, or pass --data-dir") from None
    images, labels = data.data, data.targets
    if (images.dtype != torch.uint8 or tuple(images.shape[1:]) != (SIDE, SIDE) or len(images) == 0
            or len(images) != len(labels) or labels.min() < 0 or labels.max() > 9):
        raise DataError(f"MNIST files in {root!r} are malformed (need 28x28 uint8 images and "
                        "labels 0-9, as many of each); delete them to re-download")
    return images.reshape(-1, SIDE * SIDE).to(device), labels.long().to(device)


def class_mask(labels, omit=(), only=()):
    """Boolean mask of the examples whose class is kept (`only` wins if given)."""
    classes = torch.as_tensor(list(only or omit), dtype=labels.dtype, device=labels.device)
    inside = torch.isin(labels, classes)
    return inside if only else ~inside


def filter_classes(images, labels, omit=(), only=()):
    keep = class_mask(labels, omit, only)
    return images[keep], labels[keep]


HOLDOUT_SEED = 20150309  # one fixed split for every run and seed, apart from the runs' own streams


def holdout_split(images, labels, n):
    """((images, labels) kept, (images, labels) held out): `n` examples drawn by a fixed seed,
    the same for every run, so recipes are compared on the same held-out images. Both parts
    keep their original order."""
    generator = torch.Generator().manual_seed(HOLDOUT_SEED)
    order = torch.randperm(len(labels), generator=generator).to(labels.device)
    held, kept = order[:n].sort().values, order[n:].sort().values
    return (images[kept], labels[kept]), (images[held], labels[held])


def random_subset(images, labels, fraction, seed):
    """A seeded random `fraction` of the examples (at least one), in their original order."""
    n = max(1, round(fraction * len(labels)))
    generator = torch.Generator().manual_seed(seed)
    keep = torch.randperm(len(labels), generator=generator)[:n].sort().values.to(labels.device)
    return images[keep], labels[keep]


def jitter(images, max_shift, generator):
    """Shift each image by its own random (dy, dx) in [-max_shift, max_shift]^2, zero fill.

    Batched: images sharing a shift are cut out of the zero-padded batch in one slice, so an
    epoch costs (2 max_shift + 1)^2 tensor ops, not one per image."""
    if max_shift == 0:
        return images
    n, s, width = len(images), max_shift, 2 * max_shift + 1
    padded = torch.nn.functional.pad(images.view(n, SIDE, SIDE), (s, s, s, s))
    shift_code = torch.randint(0, width * width, (n,), generator=generator)
    order = shift_code.argsort().to(images.device)
    out = torch.empty_like(images).view(n, SIDE, SIDE)
    start = 0
    for code, count in enumerate(torch.bincount(shift_code, minlength=width * width).tolist()):
        dy, dx = code // width - s, code % width - s
        rows = order[start:start + count]
        # output pixel (r, c) is input pixel (r - dy, c - dx), i.e. padded (r - dy + s, c - dx + s)
        out[rows] = padded[rows, s - dy:s - dy + SIDE, s - dx:s - dx + SIDE]
        start += count
    return out.view(n, -1)


def shuffled(tensors, generator):
    """The same random permutation applied to every tensor (None entries pass through)."""
    n = len(tensors[0])
    order = torch.randperm(n, generator=generator).to(tensors[0].device)
    return [None if t is None else t[order] for t in tensors]


def batches(tensors, batch_size):
    """Consecutive batches of the given tensors (the last one may be smaller)."""
    n = len(tensors[0])
    for start in range(0, n, batch_size):
        yield [None if t is None else t[start:start + batch_size] for t in tensors]


def data_seed(seed):
    """Seed of the data stream (subset, shuffles, jitter), apart from the init/dropout stream."""
    return seed + 2 ** 32
