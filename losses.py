"""The losses, one small self-contained function each (torch only, no project imports: copy any
of them into another project as it is).

    distillation_loss   Hinton, Vinyals & Dean 2015: KL of the softened outputs + hard labels
    dkd_loss            decoupled KD (Zhao et al. 2022): target and non-target parts, weighted
    hint_loss           FitNets' hint (Romero et al. 2015): the regressed student feature onto
                        the teacher's

`METHODS` maps distillation.py's --method to its logit loss; both take (student_logits,
teacher_logits, labels, T, alpha), and alpha means the same in both: the weight of the soft
term, 1 - alpha that of the hard-label cross-entropy.
"""
import torch
import torch.nn.functional as F


def distillation_loss(student_logits, teacher_logits, labels, T, alpha):
    """alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) * CE(student, labels).

    KL is the true per-example divergence averaged over the batch ("batchmean"; "mean" would also
    divide by the number of classes). Its gradient shrinks as 1/T^2, which the T^2 undoes, so the
    soft and hard terms keep their relative weight at any T. alpha = 1: soft targets only."""
    log_q_student = F.log_softmax(student_logits / T, dim=1)
    log_q_teacher = F.log_softmax(teacher_logits / T, dim=1)
    soft = F.kl_div(log_q_student, log_q_teacher, reduction="batchmean", log_target=True)
    hard = F.cross_entropy(student_logits, labels)
    return alpha * T * T * soft + (1 - alpha) * hard


def dkd_loss(student_logits, teacher_logits, labels, T, alpha, dkd_alpha=1.0, dkd_beta=8.0):
    """Decoupled knowledge distillation (Zhao et al., CVPR 2022), weighted as distillation_loss:
    alpha * T^2 * (dkd_alpha * TCKD + dkd_beta * NCKD) + (1 - alpha) * CE(student, labels).

    With p = softmax(logits / T) and t the label of each example:
      TCKD = KL(b_teacher || b_student) of the binary distributions b = (p_t, 1 - p_t): target
             class against all the others;
      NCKD = KL(p^_teacher || p^_student) of the distributions over the non-target classes
             only, p^_i = p_i / (1 - p_t) for i != t (= softmax of the other logits / T).
    Both are per-example divergences averaged over the batch. KD's KL is TCKD + (1 - p_t of the
    teacher) * NCKD: DKD frees NCKD from that weight, small when the teacher is confident.
    mdistiller (the authors' code) adds DKD to an unweighted CE and ramps it up over 20 epochs;
    here alpha splits soft and hard terms as in distillation_loss and there is no ramp. Its
    CIFAR-100 defaults are dkd_alpha = 1, dkd_beta = 8, T = 4."""
    not_target = ~F.one_hot(labels, student_logits.shape[1]).bool()
    def parts(logits):
        """(log of the binary (p_t, 1 - p_t), log of the non-target distribution), per example."""
        z = logits / T
        others = z[not_target].view(len(z), -1)
        log_all = torch.logsumexp(z, dim=1, keepdim=True)
        log_binary = torch.cat([z.gather(1, labels[:, None]) - log_all,
                                torch.logsumexp(others, dim=1, keepdim=True) - log_all], dim=1)
        return log_binary, F.log_softmax(others, dim=1)
    (binary_s, others_s), (binary_t, others_t) = parts(student_logits), parts(teacher_logits)
    tckd = F.kl_div(binary_s, binary_t, reduction="batchmean", log_target=True)
    nckd = F.kl_div(others_s, others_t, reduction="batchmean", log_target=True)
    hard = F.cross_entropy(student_logits, labels)
    return alpha * T * T * (dkd_alpha * tckd + dkd_beta * nckd) + (1 - alpha) * hard


def hint_loss(student_feature, teacher_feature, regressor):
    """FitNets' hint loss: 1/2 * sum of the squared differences between the regressed student
    feature and the teacher's, per example (over all its channels and positions, or units),
    averaged over the batch. The regressor ends in the teacher layer's non-linearity (a ReLU
    here); the teacher's feature is a target: no gradient reaches the teacher."""
    difference = regressor(student_feature) - teacher_feature.detach()
    return 0.5 * difference.pow(2).flatten(1).sum(dim=1).mean()


METHODS = {"kd": distillation_loss, "dkd": dkd_loss}  # distillation.py --method -> its loss
