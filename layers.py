"""The nets: a ReLU MLP with input/hidden dropout, max-norm on hidden units, and weight init.

The net takes raw pixels in [0, 1] (N, 784) and standardizes them itself, so a checkpoint is
usable without knowing how its inputs were preprocessed.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


class MLP(nn.Module):
    def __init__(self, hidden=(1200, 1200), dropout_input=0.0, dropout_hidden=0.0,
                 max_norm=0.0, init_std=0.0, standardize=True, in_features=784, classes=10):
        super().__init__()
        self.hidden = [int(h) for h in hidden]
        self.dropout_input, self.dropout_hidden = float(dropout_input), float(dropout_hidden)
        self.max_norm, self.init_std = float(max_norm), float(init_std)
        self.standardize = bool(standardize)
        self.in_features, self.classes = int(in_features), int(classes)
        widths = [self.in_features] + self.hidden + [self.classes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        if self.init_std > 0:
            for layer in self.layers:
                nn.init.normal_(layer.weight, 0.0, self.init_std)
                nn.init.zeros_(layer.bias)

    def forward(self, x):
        # Dropout on raw pixels: a dropped pixel is background (0), as in the 2012 recipe.
        x = F.dropout(x, self.dropout_input, self.training)
        if self.standardize:
            x = (x - MNIST_MEAN) / MNIST_STD
        for layer in self.layers[:-1]:
            x = F.dropout(F.relu(layer(x)), self.dropout_hidden, self.training)
        return self.layers[-1](x)

    @torch.no_grad()
    def apply_max_norm(self):
        """Rescale each hidden unit's incoming weight vector onto the ball of radius max_norm."""
        if self.max_norm > 0:
            for layer in self.layers[:-1]:
                layer.weight.renorm_(2, 0, self.max_norm)

    def config(self):
        """Everything needed to rebuild the net: `MLP(**net.config())`."""
        return {"hidden": self.hidden, "dropout_input": self.dropout_input,
                "dropout_hidden": self.dropout_hidden, "max_norm": self.max_norm,
                "init_std": self.init_std, "standardize": self.standardize,
                "in_features": self.in_features, "classes": self.classes}


def describe(config):
    widths = [config.get("in_features", 784), *config["hidden"], config.get("classes", 10)]
    return "-".join(map(str, widths))
