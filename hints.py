"""Hints (FitNets, Romero et al. 2015): the student also learns to reproduce an intermediate
feature of the teacher, through a small learned regressor from its own feature to the teacher's.

One home for feature distillation: the regressor, the student-plus-regressor module that
`train.fit` trains, the default layers, the flags and the losses of the two ways to train with
a hint (distillation.py runs them; the hint loss itself is in losses.py, a small copyable
function beside the logit losses):
  one stage:  loss = distillation loss + hint_weight * hint loss, the whole student at once;
  two stages: (1) the student's layers up to the guided feature, and the regressor, learn the
              hint loss alone (unweighted: FitNets' first stage); (2) the whole student learns by
              plain distillation (FitNets' recipe).
As in FitNets: the regressor ends in the teacher layer's non-linearity (ReLU for these nets),
the hint and guided layers default to the middle ones, and the loss is 1/2 * the sum of squared
differences per example. Records of such runs say "hint_version": 2; runs made before (a plain
1x1 conv or linear regressor, the last layers, the mean squared error, a first stage scaled by
the hint weight) lack it.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from errors import UsageError
import layers
from layers import describe
from losses import hint_loss

HINT_VERSION = 2  # recorded with every hint run: older records (no hint_version) are version 1


def make_regressor(student_shape, teacher_shape):
    """A 1x1 conv from a student feature map (C, H, W) to a teacher's of the same H x W, or a
    linear map from a student vector (D,) to a teacher's, each followed by a ReLU, the
    non-linearity of the teacher's feature (every conv stage and hidden layer here ends in one);
    ValueError for any other pair."""
    if len(student_shape) == 3 and len(teacher_shape) == 3:
        if student_shape[1:] != teacher_shape[1:]:
            raise ValueError(f"a {fmt(student_shape)} map cannot be regressed onto a "
                             f"{fmt(teacher_shape)} one: their sizes differ (pick layers "
                             "with the same height and width)")
        return nn.Sequential(nn.Conv2d(student_shape[0], teacher_shape[0], 1), nn.ReLU())
    if len(student_shape) == 1 and len(teacher_shape) == 1:
        return nn.Sequential(nn.Linear(student_shape[0], teacher_shape[0]), nn.ReLU())
    raise ValueError(f"a {fmt(student_shape)} feature cannot be regressed onto a "
                     f"{fmt(teacher_shape)} one: pair a conv stage with a conv stage or a "
                     "hidden layer with a hidden layer")


def fmt(shape):
    return "x".join(map(str, shape))


@dataclass(frozen=True)
class Hint:
    weight: float          # of the hint term of one stage (two stages: the first is unweighted)
    student_layer: str     # e.g. "stage2", "fc1" (layers.py names the features)
    teacher_layer: str
    stages: int = 1        # 1: hint + distillation together; 2: FitNets' two stages
    epochs: int = 0        # length of the first of two stages


class Hinted(nn.Module):
    """The student and its regressor as one module for `train.fit` (one optimizer, one
    checkpoint); it predicts, evaluates and is max-normed as the student."""

    def __init__(self, student, regressor):
        super().__init__()
        self.student, self.regressor = student, regressor
        self.classes = student.classes

    def forward(self, x):
        return self.student(x)

    def apply_max_norm(self):
        self.student.apply_max_norm()


def one_stage_loss(teacher, hint, distill_loss):
    """Batch loss: `distill_loss(student_logits, teacher_logits, labels)` plus the weighted hint
    term; the teacher runs on each batch (its feature is needed anyway)."""
    def batch_loss(hinted, images, labels, _extra):
        with torch.no_grad():
            teacher_logits, teacher_features = teacher.forward_features(images)
        logits, features = hinted.student.forward_features(images)
        hint_term = hint_loss(features[hint.student_layer], teacher_features[hint.teacher_layer],
                              hinted.regressor)
        return distill_loss(logits, teacher_logits, labels) + hint.weight * hint_term
    return batch_loss


def first_stage_loss(teacher, hint):
    """Batch loss of the first of two stages: the hint loss alone, through the lower layers only,
    not scaled by hint.weight (FitNets' first stage; a weight would only rescale its learning
    rate)."""
    def batch_loss(hinted, images, labels, _extra):
        with torch.no_grad():
            teacher_feature = teacher.forward_features(images, upto=hint.teacher_layer)[1]
        feature = hinted.student.forward_features(images, upto=hint.student_layer)[1]
        return hint_loss(feature[hint.student_layer], teacher_feature[hint.teacher_layer],
                         hinted.regressor)
    return batch_loss


def middle(names):
    """The middle of a list of layer names: index (n - 1) // 2, 0-based, the earlier of the two
    middle ones for an even count (stage1 of 2 stages, stage2 of 3, fc1 of 2 hidden layers)."""
    return names[(len(names) - 1) // 2]


def default_layers(student, teacher):
    """FitNets' default (guided, hint) pair: the middle conv stage of each if both nets are
    CNNs, else the middle hidden layer of each."""
    stages = [[n for n in net.feature_names() if n.startswith("stage")] for net in (student, teacher)]
    if all(stages):
        return middle(stages[0]), middle(stages[1])
    hidden = [[n for n in net.feature_names() if n.startswith("fc")] or net.feature_names()
              for net in (student, teacher)]  # (a CNN without hidden layers: its stages)
    return middle(hidden[0]), middle(hidden[1])


def freeze_above(student, layer):
    """Freeze every student parameter that does not compute `layer` (the first stage trains
    the lower layers only); returns the frozen ones, to thaw them for the second stage."""
    lower = {id(p) for p in student.lower_parameters(layer)}
    frozen = [p for p in student.parameters() if id(p) not in lower and p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    return frozen


def regressor_of(student, teacher, hint, device):
    """The regressor from the student's hinted feature to the teacher's (seeded by the
    student's init stream: created right after the student)."""
    return make_regressor(layers.feature_shape(student, hint.student_layer),
                                layers.feature_shape(teacher, hint.teacher_layer)).to(device)


def add_hint_flags(parser):
    group = parser.add_argument_group("hints (feature distillation, FitNets; see hints.py)")
    group.add_argument("--hint-weight", type=float, metavar="B",
                       help="add B x the hint loss: 1/2 x the sum of squared differences of the "
                            "regressed student feature (1x1 conv or linear, then ReLU) and the "
                            "teacher's, per example (summed over all channels and positions, "
                            "so it grows with the feature's size), averaged over the batch; "
                            "with --two-stage it only turns the hint on (the first stage is "
                            "unweighted); 0 or absent: no hint")
    group.add_argument("--hint-layers", nargs=2, metavar=("STUDENT", "TEACHER"),
                       help="the features to match, e.g. stage2 stage2 or fc1 fc1 (default, as "
                            "FitNets: the middle conv stage of each if both are CNNs, else the "
                            "middle hidden layer of each; of an even count the earlier one, "
                            "index (n - 1) // 2: stage1 of 2 stages)")
    group.add_argument("--two-stage", action="store_true",
                       help="FitNets' two stages: the hint loss alone, unweighted, trains the "
                            "student's layers up to its hinted feature for --hint-epochs, then "
                            "plain distillation")
    group.add_argument("--hint-epochs", type=int, metavar="N",
                       help="length of the first of two stages (default: a quarter of --epochs)")


def hint_of(args, config, teacher, epochs):
    """The run's Hint from the flags, checked against both nets; None without a hint."""
    weight = args.hint_weight
    if weight is None or weight == 0:
        if args.hint_layers or args.two_stage or args.hint_epochs is not None:
            raise UsageError("--hint-layers, --two-stage and --hint-epochs need a "
                                 "--hint-weight above 0")
        return None
    if not (math.isfinite(weight) and weight > 0):
        raise UsageError(f"--hint-weight must be a finite number > 0 (0: no hint), got {weight}")
    student = layers.build(config)
    names = args.hint_layers or default_layers(student, teacher)
    for net, name, who in ((student, names[0], "student"), (teacher, names[1], "teacher")):
        if name not in net.feature_names():
            raise UsageError(f"--hint-layers: the {who} ({describe(net.config())}) has no "
                                 f"feature {name!r}; it has {', '.join(net.feature_names())}")
    try:
        make_regressor(layers.feature_shape(student, names[0]),
                             layers.feature_shape(teacher, names[1]))
    except ValueError as e:
        raise UsageError(f"--hint-layers {names[0]} {names[1]}: {e}") from None
    if args.hint_epochs is not None and not args.two_stage:
        raise UsageError("--hint-epochs is the first of two stages' length: add --two-stage")
    first = max(1, epochs // 4) if args.hint_epochs is None else args.hint_epochs
    if args.two_stage and first < 1:
        raise UsageError(f"--hint-epochs must be >= 1, got {first}")
    return Hint(weight, names[0], names[1], 2 if args.two_stage else 1,
                      first if args.two_stage else 0)
