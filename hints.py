"""Hints (FitNets, Romero et al. 2015): the student also learns to reproduce an intermediate
feature of the teacher, through a small learned regressor from its own feature to the teacher's.

One home for feature distillation: the hint loss (the second small copyable function, beside
`distillation.distillation_loss`), the regressor, the student-plus-regressor module that
`train.fit` trains, and the two ways to train with a hint:
  one stage:  loss = distillation loss + hint_weight * hint loss, the whole student at once;
  two stages: (1) the student's layers up to the guided feature, and the regressor, learn the
              hint alone; (2) the whole student learns by plain distillation (FitNets' recipe).
"""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


def hint_loss(student_feature, teacher_feature, regressor):
    """Mean squared error between the regressed student feature and the teacher's feature
    (the teacher's is a target: no gradient reaches the teacher)."""
    return F.mse_loss(regressor(student_feature), teacher_feature.detach())


def make_regressor(student_shape, teacher_shape):
    """A 1x1 conv from a student feature map (C, H, W) to a teacher's of the same H x W, or a
    linear map from a student vector (D,) to a teacher's; ValueError for any other pair."""
    if len(student_shape) == 3 and len(teacher_shape) == 3:
        if student_shape[1:] != teacher_shape[1:]:
            raise ValueError(f"a {fmt(student_shape)} map cannot be regressed onto a "
                             f"{fmt(teacher_shape)} one: their sizes differ (pick layers "
                             "with the same height and width)")
        return nn.Conv2d(student_shape[0], teacher_shape[0], 1)
    if len(student_shape) == 1 and len(teacher_shape) == 1:
        return nn.Linear(student_shape[0], teacher_shape[0])
    raise ValueError(f"a {fmt(student_shape)} feature cannot be regressed onto a "
                     f"{fmt(teacher_shape)} one: pair a conv stage with a conv stage or a "
                     "hidden layer with a hidden layer")


def fmt(shape):
    return "x".join(map(str, shape))


@dataclass(frozen=True)
class Hint:
    weight: float          # of the hint term (one stage), or of the first stage's loss
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
    """Batch loss of the first of two stages: the hint alone, through the lower layers only."""
    def batch_loss(hinted, images, labels, _extra):
        with torch.no_grad():
            teacher_feature = teacher.forward_features(images, upto=hint.teacher_layer)[1]
        feature = hinted.student.forward_features(images, upto=hint.student_layer)[1]
        return hint.weight * hint_loss(feature[hint.student_layer],
                                       teacher_feature[hint.teacher_layer], hinted.regressor)
    return batch_loss


def freeze_above(student, layer):
    """Freeze every student parameter that does not compute `layer` (the first stage trains
    the lower layers only); returns the frozen ones, to thaw them for the second stage."""
    lower = {id(p) for p in student.lower_parameters(layer)}
    frozen = [p for p in student.parameters() if id(p) not in lower and p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    return frozen
