"""Datasets as in-memory tensors: MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 through
torchvision, class filters, subsets, a held-out split, batched augmentation, seeded batches.

Images are uint8 (N, C*H*W) in [0, 255], channels first, on the chosen device (the nets convert
each batch to float and normalize it themselves), a quarter of the memory and memory traffic of
float32; labels int64 (N,). No DataLoader: an epoch is one permutation of the whole tensor,
augmented in a few batched slices.
"""
import contextlib
import io
import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Info:
    """What the scripts need to know of a dataset: torchvision's class and folder, the image
    shape, the classes, the per-channel pixel mean and std (of the training images in [0, 1]),
    and its augmentation (shifts of up to `jitter` px with zero fill; `flip`: mirror half), and
    how many training images it has."""
    torchvision_class: str
    folder: str               # under --data-dir, where torchvision keeps the files
    shape: tuple              # (channels, height, width)
    classes: int
    mean: tuple
    std: tuple
    jitter: int
    flip: bool
    train_count: int


DATASETS = {
    "mnist": Info("MNIST", os.path.join("MNIST", "raw"), (1, 28, 28), 10, (0.1307,), (0.3081,), 2,
                  False, 60000),
    "fashion-mnist": Info("FashionMNIST", os.path.join("FashionMNIST", "raw"), (1, 28, 28), 10,
                          (0.2860,), (0.3530,), 2, False, 60000),
    # 4 px crop of the zero-padded image (= a shift of up to 4 px) and horizontal flips
    "cifar10": Info("CIFAR10", "cifar-10-batches-py", (3, 32, 32), 10,
                    (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 4, True, 50000),
    "cifar100": Info("CIFAR100", "cifar-100-python", (3, 32, 32), 100,
                     (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), 4, True, 50000),
}
SIDE = 28  # MNIST's


class DataError(Exception):
    """A dataset could not be found, downloaded or read; the message says how to fix it."""


def load(root, train, device="cpu", name="mnist"):
    """(images, labels) of a dataset's train or test split, via torchvision (downloads if absent)."""
    import torchvision.datasets
    info = DATASETS[name]
    folder = os.path.join(root, info.folder)
    parts, tail = info.folder.split(os.sep), os.path.normpath(root).split(os.sep)
    inner = next((os.path.normpath(os.path.join(root, *[".."] * i)) for i in (1, 2)
                  if tail[-i:] == parts[:i] and not os.path.isdir(folder)), None)
    if inner is not None:  # the user pointed at MNIST/raw or MNIST instead of the root above
        raise DataError(f"{name}: --data-dir is the folder that holds {info.folder}; "
                        f"try --data-dir {inner}")
    parts = [root] + [os.path.join(root, *info.folder.split(os.sep)[:i + 1])
                      for i in range(len(info.folder.split(os.sep)))]
    created = [d for d in parts if not os.path.exists(d)]
    try:
        # torchvision prints progress and retries on stdout; our caller reports one clear line.
        with contextlib.redirect_stdout(io.StringIO()):
            data = getattr(torchvision.datasets, info.torchvision_class)(root=root, train=train,
                                                                          download=True)
    except Exception as e:
        for d in reversed(created):  # leave no empty folder behind a failed download
            with contextlib.suppress(OSError):
                os.rmdir(d)
        if created or not os.listdir(folder):
            raise DataError(f"{name} is not in {folder!r} and could not be downloaded "
                            f"({type(e).__name__}); with no network, put its files there "
                            "or pass --data-dir") from None
        raise DataError(f"{name} files in {folder!r} could not be read ({type(e).__name__}); "
                        "delete them to download afresh, or pass --data-dir") from None
    images = torch.as_tensor(data.data)
    labels = torch.as_tensor(data.targets).long()
    if images.dim() == 4:  # CIFAR keeps (N, H, W, C)
        images = images.permute(0, 3, 1, 2)
    c, h, w = info.shape
    if (images.dtype != torch.uint8 or images[0].numel() != c * h * w or len(images) == 0
            or len(images) != len(labels) or labels.min() < 0 or labels.max() >= info.classes):
        raise DataError(f"{name} files in {folder!r} are malformed (need {c}x{h}x{w} uint8 "
                        f"images and labels 0-{info.classes - 1}, as many of each); delete them "
                        "to re-download")
    return images.reshape(len(images), -1).contiguous().to(device), labels.to(device)


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


def draw_shifts(n, max_shift, generator):
    """One shift code per image, (dy + s) * (2s + 1) + (dx + s) for s = max_shift."""
    width = 2 * max_shift + 1
    return torch.randint(0, width * width, (n,), generator=generator)


def shift(images, codes, max_shift, shape, order=None):
    """Each image shifted by its code's (dy, dx) (see `draw_shifts`), zero fill; with `order`,
    images[order] (code i for images[order[i]]).

    Batched: the images sharing a shift are gathered, shifted and put back in one op each, so an
    epoch costs (2 max_shift + 1)^2 tensor ops, not one per image."""
    (c, h, w), s, width = shape, max_shift, 2 * max_shift + 1
    n = len(codes)
    source = images.view(len(images), c, h, w)
    by_code = codes.argsort().to(images.device)
    out = torch.empty((n, c, h, w), dtype=images.dtype, device=images.device)
    start = 0
    for code, count in enumerate(torch.bincount(codes, minlength=width * width).tolist()):
        dy, dx = code // width - s, code % width - s
        rows = by_code[start:start + count]
        start += count
        # output pixel (r, c) is input pixel (r - dy, c - dx); zero where that is outside
        block = torch.zeros((count, c, h, w), dtype=images.dtype, device=images.device)
        block[:, :, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = source.index_select(
            0, rows if order is None else order[rows])[:, :, max(-dy, 0):h + min(-dy, 0),
                                                       max(-dx, 0):w + min(-dx, 0)]
        out.index_copy_(0, rows, block)
    return out.view(n, -1)


def draw_mirrors(n, generator):
    return torch.rand(n, generator=generator).lt(0.5)


def mirror(images, mirrored, shape):
    c, h, w = shape
    out = images.view(-1, c, h, w).clone()
    mirrored = mirrored.to(images.device)
    out[mirrored] = out[mirrored].flip(3)
    return out.view(len(images), -1)


def augment(images, generator, max_shift, mirror_half, views=False, order=None):
    """The training-time augmentation: shifts (crops), then flips where the dataset has them.
    `views`: also return each image's view index (see `view_count`), which says exactly which
    shift and flip it got, so cached per-view teacher logits can be looked up. `order`: the
    epoch's order of `images`; the result is images[order] augmented, gathered in the same pass
    as the shifts (one copy of the data, not two)."""
    shape = image_shape(images.shape[1])
    n = len(images) if order is None else len(order)
    codes = draw_shifts(n, max_shift, generator) if max_shift else torch.zeros(n, dtype=torch.long)
    if max_shift:
        images = shift(images, codes, max_shift, shape, order)
    elif order is not None:
        images = images[order]
    mirrored = draw_mirrors(n, generator) if mirror_half else torch.zeros(n, dtype=torch.bool)
    if mirror_half:
        images = mirror(images, mirrored, shape)
    if not views:
        return images
    return images, (codes + mirrored.long() * (2 * max_shift + 1) ** 2).to(images.device)


def view_count(max_shift, mirror_half):
    """Distinct augmented views of an image: (2s + 1)^2 shifts, twice that with flips."""
    return (2 * max_shift + 1) ** 2 * (2 if mirror_half else 1)


def view_of(images, view, max_shift):
    """Every image in the given view (an index as `augment` returns them)."""
    shape, shifts = image_shape(images.shape[1]), (2 * max_shift + 1) ** 2
    codes = torch.full((len(images),), view % shifts, dtype=torch.long)
    out = shift(images, codes, max_shift, shape) if max_shift else images
    return mirror(out, torch.full((len(images),), view >= shifts), shape) if view >= shifts else out


def image_shape(pixels):
    """(C, H, W) of flattened images of `pixels` values: 784 -> (1, 28, 28), 3072 -> (3, 32, 32)."""
    shapes = {s[0] * s[1] * s[2]: s for s in (info.shape for info in DATASETS.values())}
    if pixels not in shapes:
        raise ValueError(f"no dataset has images of {pixels} values")
    return shapes[pixels]


def permutation(n, generator, device):
    """An epoch's random order of n examples (from the data stream's generator)."""
    return torch.randperm(n, generator=generator).to(device)


def batches(tensors, batch_size):
    """Consecutive batches of the given tensors (the last one may be smaller)."""
    n = len(tensors[0])
    for start in range(0, n, batch_size):
        yield [None if t is None else t[start:start + batch_size] for t in tensors]


def data_seed(seed):
    """Seed of the data stream (subset, shuffles, jitter), apart from the init/dropout stream."""
    return seed + 2 ** 32
