"""The nets: a ReLU MLP (input/hidden dropout, max-norm on hidden units, weight init) and a
CNN family (conv stages with optional batch norm, max-pool, then an MLP head), each rebuilt
from its config by `build`, with named intermediate features that hints attach to.

A net takes raw pixels (N, C*H*W), channels first, either uint8 in [0, 255] as `dataset.py`
keeps them or float in [0, 1], and standardizes them itself with its dataset's per-channel mean
and std (kept in its config), so a checkpoint is usable without knowing how its inputs were
preprocessed.
"""
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)


def pixels(x, standardize, mean, std):
    """uint8 or [0, 1] pixels (N, C*H*W) -> floats, standardized per channel if asked."""
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    if not standardize:
        return x
    if len(mean) == 1:
        return (x - mean[0]) / std[0]
    shape = x.shape
    x = x.view(len(x), len(mean), -1)
    return ((x - x.new_tensor(mean)[:, None]) / x.new_tensor(std)[:, None]).view(shape)


class MLP(nn.Module):
    def __init__(self, hidden=(1200, 1200), dropout_input=0.0, dropout_hidden=0.0,
                 max_norm=0.0, init_std=0.0, standardize=True, in_features=784, classes=10,
                 mean=MNIST_MEAN, std=MNIST_STD):
        super().__init__()
        self.hidden = [int(h) for h in hidden]
        self.dropout_input, self.dropout_hidden = float(dropout_input), float(dropout_hidden)
        self.max_norm, self.init_std = float(max_norm), float(init_std)
        self.standardize = bool(standardize)
        self.in_features, self.classes = int(in_features), int(classes)
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]
        widths = [self.in_features] + self.hidden + [self.classes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        if self.init_std > 0:
            for layer in self.layers:
                nn.init.normal_(layer.weight, 0.0, self.init_std)
                nn.init.zeros_(layer.bias)

    def forward(self, x):
        return forward_in_precision(self, x)

    def forward_features(self, x, upto=None):
        """(logits, {name: feature}) with the hidden layers' outputs as fc1, fc2, ...; with
        `upto` a feature name, stops there: (None, features so far)."""
        x = pixels(x, self.standardize, self.mean, self.std)
        # Input dropout zeroes the net's input: background for raw pixels (the 2012 recipe), the
        # mean pixel for standardized ones. The latter gave the better teacher: 77 test errors
        # against 88 (LocalParams, 150 epochs, seed 2: results/teacher_dropout_order).
        x = dropout(x, self.dropout_input, self.training)
        return head(self, x, {}, upto)

    def lower_parameters(self, name):
        """The parameters that compute feature `name` (what a hint's first stage trains)."""
        return [p for layer in self.layers[:int(name[2:])] for p in layer.parameters()]

    @torch.no_grad()
    def apply_max_norm(self):
        """Rescale each hidden unit's incoming weight vector onto the ball of radius max_norm."""
        if self.max_norm > 0:
            for layer in self.layers[:-1]:
                if over_bound(layer.weight, self.max_norm):
                    layer.weight.renorm_(2, 0, self.max_norm)

    def config(self):
        """Everything needed to rebuild the net: `build(net.config())`."""
        return {"arch": "mlp", "hidden": self.hidden, "dropout_input": self.dropout_input,
                "dropout_hidden": self.dropout_hidden, "max_norm": self.max_norm,
                "init_std": self.init_std, "standardize": self.standardize,
                "in_features": self.in_features, "classes": self.classes,
                "mean": self.mean, "std": self.std}

    def feature_names(self):
        return [f"fc{i + 1}" for i in range(len(self.hidden))]


class CNN(nn.Module):
    """Conv stages, then an MLP head. Stage i: `convs` x (k x k conv with `channels[i]` filters,
    'same' padding, [batch norm], ReLU), then a 2x2 max-pool. Head: hidden layers (ReLU, hidden
    dropout; max-norm applies to them), then the classes; input dropout, if any, on the pixels. Features: stage1, ...
    (after each pool) and fc1, ... (the head's hidden layers).

    `CNN(channels=[32], kernel=5, hidden=[128])` is the classic MNIST teacher (conv 32@5x5,
    max-pool, FC 128); `CNN(channels=[w, 2w, 4w], kernel=3, convs=2, batch_norm=True,
    hidden=[8w])` a width-w VGG-style family for CIFAR."""

    def __init__(self, channels=(32,), kernel=5, convs=1, batch_norm=False, hidden=(128,),
                 dropout_input=0.0, dropout_hidden=0.0, max_norm=0.0, init_std=0.0,
                 standardize=True, in_shape=(1, 28, 28), classes=10, mean=MNIST_MEAN,
                 std=MNIST_STD):
        super().__init__()
        self.channels, self.kernel, self.convs = [int(c) for c in channels], int(kernel), int(convs)
        self.batch_norm, self.hidden = bool(batch_norm), [int(h) for h in hidden]
        self.dropout_input, self.dropout_hidden = float(dropout_input), float(dropout_hidden)
        self.max_norm, self.init_std = float(max_norm), float(init_std)
        self.standardize, self.in_shape = bool(standardize), [int(d) for d in in_shape]
        self.classes = int(classes)
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]
        self.in_features = self.in_shape[0] * self.in_shape[1] * self.in_shape[2]
        stages, width = [], self.in_shape[0]
        for c in self.channels:
            block = []
            for _ in range(self.convs):
                block += [nn.Conv2d(width, c, self.kernel, padding=self.kernel // 2,
                                    bias=not self.batch_norm)]
                block += [nn.BatchNorm2d(c)] if self.batch_norm else []
                block += [nn.ReLU()]
                width = c
            stages.append(nn.Sequential(*block, nn.MaxPool2d(2)))
        self.stages = nn.ModuleList(stages)
        side = [d // 2 ** len(self.channels) for d in self.in_shape[1:]]
        if min(side) < 1:
            raise ValueError(f"{len(self.channels)} pooling stages shrink a "
                             f"{self.in_shape[1]}x{self.in_shape[2]} image to nothing")
        widths = [width * side[0] * side[1]] + self.hidden + [self.classes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        if self.init_std > 0:
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    nn.init.normal_(module.weight, 0.0, self.init_std)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)

    def forward(self, x):
        return forward_in_precision(self, x)

    def forward_features(self, x, upto=None):
        """(logits, {name: feature}); with `upto` a feature name, stops there: (None, features)."""
        x = pixels(x, self.standardize, self.mean, self.std).view(len(x), *self.in_shape)
        x = dropout(x, self.dropout_input, self.training)
        features = {}
        for i, stage in enumerate(self.stages):
            x = features[f"stage{i + 1}"] = stage(x)
            if upto == f"stage{i + 1}":
                return None, features
        return head(self, x.flatten(1), features, upto)

    def lower_parameters(self, name):
        """The parameters that compute feature `name` (what a hint's first stage trains)."""
        index = int(name.removeprefix("stage").removeprefix("fc"))
        modules = (list(self.stages[:index]) if name.startswith("stage")
                   else list(self.stages) + list(self.layers[:index]))
        return [p for m in modules for p in m.parameters()]

    apply_max_norm = MLP.apply_max_norm

    def feature_names(self):
        return ([f"stage{i + 1}" for i in range(len(self.channels))]
                + [f"fc{i + 1}" for i in range(len(self.hidden))])

    def config(self):
        """Everything needed to rebuild the net: `build(net.config())`."""
        return {"arch": "cnn", "channels": self.channels, "kernel": self.kernel,
                "convs": self.convs, "batch_norm": self.batch_norm, "hidden": self.hidden,
                "dropout_input": self.dropout_input, "dropout_hidden": self.dropout_hidden,
                "max_norm": self.max_norm, "init_std": self.init_std,
                "standardize": self.standardize, "in_shape": self.in_shape,
                "classes": self.classes, "mean": self.mean, "std": self.std}


def over_bound(weight, bound):
    """Whether some unit's incoming weights may be longer than `bound`. On the CPU a check of
    the lengths (one read) skips renorm_'s rewrite of every weight when none is (the usual case:
    the teachers' units rarely reach the bound), bit for bit the same: renorm_ leaves such rows
    as they are. The margin covers the last bit in which the two length sums may differ. On a
    GPU the check would wait for the device each step: renorm_ always."""
    if weight.device.type != "cpu":
        return True
    return bool(torch.linalg.vector_norm(weight, dim=1).max() >= bound * (1 - 1e-5))


def head(net, x, features, upto):
    """The hidden layers (ReLU, hidden dropout; features fc1, fc2, ...) and the output layer of
    either net: (logits, features), or (None, features) on reaching feature `upto`."""
    for i, layer in enumerate(net.layers[:-1]):
        x = features[f"fc{i + 1}"] = dropout(F.relu(layer(x)), net.dropout_hidden, net.training)
        if upto == f"fc{i + 1}":
            return None, features
    return net.layers[-1](x), features


ARCHITECTURES = {"mlp": MLP, "cnn": CNN}


def build(config):
    """The net a config describes (`net.config()`; a config without "arch" is an MLP's)."""
    config = dict(config)
    return ARCHITECTURES[config.pop("arch", "mlp")](**config)


def feature_shape(net, name):
    """The shape of one example's feature `name`: (C, H, W) of a conv stage, (D,) of a layer."""
    with torch.no_grad():
        was = net.training
        net.eval()
        device = next(net.parameters()).device
        shape = net.forward_features(torch.zeros(1, net.in_features, device=device),
                                     upto=name)[1][name].shape[1:]
        net.train(was)
    return tuple(shape)


def multiply_adds(net):
    """Multiply-adds of one forward pass of one image (convs and linear layers; the cost of
    ReLU, pooling and batch norm is a rounding error beside them)."""
    total, shape = 0, list(getattr(net, "in_shape", [net.in_features]))
    for stage in getattr(net, "stages", []):
        for m in stage:
            if isinstance(m, nn.Conv2d):
                total += shape[1] * shape[2] * m.out_channels * m.in_channels * m.kernel_size[0] ** 2
                shape = [m.out_channels, shape[1], shape[2]]
        shape = [shape[0], shape[1] // 2, shape[2] // 2]
    return total + sum(layer.in_features * layer.out_features for layer in net.layers)


def dropout(x, p, training):
    """Inverted dropout, as F.dropout: each element kept with probability 1 - p, scaled by 1/(1 - p).

    On the CPU, F.dropout draws its mask with bernoulli_, which costs 4x a uniform draw and was a
    quarter of a teacher's training step. Here: one uniform draw per element, or for p = 0.5 (the
    hidden layers) one random bit per element, expanded to floats through a table of the 256
    bytes. Same distribution, a quarter of the time. CUDA's fused kernel is faster still."""
    if not training or p == 0:
        return x
    if x.device.type != "cpu" or x.dtype != torch.float32 or p >= 1:
        return F.dropout(x, p, True)
    if p == 0.5:
        return x * half_mask(x.numel(), x.device).view_as(x)
    return x * torch.rand_like(x).ge_(p).mul_(1.0 / (1.0 - p))  # 0 or 1/(1-p)


_BYTE_TO_MASK = ((torch.arange(256)[:, None] >> torch.arange(8)) & 1).float().mul_(2.0)


def half_mask(n, device):
    """n values, each 0 or 2 with probability 1/2, from n random bits (8 per byte)."""
    n_bytes = -(-n // 8)
    # 56 uniform bits per int64 (2^56 divides 2^64, so no modulo bias): 7 of its 8 bytes.
    words = torch.empty(-(-n_bytes // 7), dtype=torch.int64, device=device).random_(0, 2 ** 56)
    low_seven = slice(0, 7) if sys.byteorder == "little" else slice(1, 8)
    random_bytes = words.view(torch.uint8).view(-1, 8)[:, low_seven].reshape(-1)[:n_bytes]
    return F.embedding(random_bytes.long(), _BYTE_TO_MASK.to(device)).view(-1)[:n]


def describe(config):
    """'784-800-800-10' of an MLP; 'cnn 1x28x28-c32k5-128-10' of a CNN (cN: a stage of N
    filters, x2 for two convs, kN the kernel, +bn with batch norm)."""
    if config.get("arch", "mlp") == "mlp":
        widths = [config.get("in_features", 784), *config["hidden"], config.get("classes", 10)]
        return "-".join(map(str, widths))
    stage = ("x2" if config["convs"] == 2 else f"x{config['convs']}" if config["convs"] > 1 else "")
    bn = "+bn" if config["batch_norm"] else ""
    parts = ["x".join(map(str, config["in_shape"])),
             *(f"c{c}{stage}k{config['kernel']}{bn}" for c in config["channels"]),
             *map(str, config["hidden"]), str(config["classes"])]
    return "cnn " + "-".join(parts)


PRECISIONS = ("fp32", "bf16")


def set_precision(net, precision):
    """Run the net's forward passes in `precision`: 'bf16' autocasts them to bfloat16 (the
    weights, their gradients and the optimizer stay fp32) and keeps a CNN's conv weights
    channels-last, the layout the bf16 convolution kernels want. Not part of the config: a
    checkpoint is the same net in any precision."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    net.precision = precision
    if isinstance(net, CNN):
        net.to(memory_format=torch.channels_last if precision == "bf16" else torch.contiguous_format)
    return net


def forward_in_precision(net, x):
    """The logits, in fp32 whatever the net computes in (see `set_precision`)."""
    bf16 = getattr(net, "precision", "fp32") == "bf16"
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        return net.forward_features(x)[0].float()


@torch.no_grad()
def logits_of(net, images, chunk=10000):
    net.eval()
    return torch.cat([net(images[i:i + chunk]) for i in range(0, len(images), chunk)])


def evaluate(net, images, labels):
    """(errors, per-class errors as one int per class, predictions)."""
    predictions = logits_of(net, images).argmax(1)
    wrong = labels[predictions != labels]
    per_class = torch.bincount(wrong, minlength=net.classes).tolist()
    return sum(per_class), per_class, predictions
