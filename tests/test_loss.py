"""The logit losses of losses.py against hand-computed values: KD (distillation_loss) and the
paper's gradient claims, and decoupled KD (dkd_loss) with its relation to KD."""
import math

import pytest
import torch
import torch.nn.functional as F

import losses
from losses import distillation_loss, dkd_loss


def loss_of(student, teacher, labels, T, alpha):
    return distillation_loss(torch.tensor(student, dtype=torch.float64),
                             torch.tensor(teacher, dtype=torch.float64),
                             torch.tensor(labels), T, alpha).item()


def test_hand_computed_values():
    # Teacher q = softmax(teacher / T) = (3/4, 1/4); student q = (1/2, 1/2).
    # KL = 3/4 ln(3/2) + 1/4 ln(1/2) = 0.1308120...; CE of (0, 0) on label 0 = ln 2.
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert abs(kl - 0.1308120) < 1e-6
    assert abs(loss_of([[0., 0.]], [[math.log(3), 0.]], [0], 1, 0.5) - (0.5 * kl + 0.5 * math.log(2))) < 1e-9
    # At T = 2 the teacher logits double for the same soft targets; the soft term gains T^2 = 4.
    assert abs(loss_of([[0., 0.]], [[2 * math.log(3), 0.]], [0], 2, 0.5)
               - (0.5 * 4 * kl + 0.5 * math.log(2))) < 1e-9
    assert abs(loss_of([[0., 0.]], [[2 * math.log(3), 0.]], [0], 2, 0.5) - 0.6081977) < 1e-6


def reference_loss(student, teacher, label, T, alpha):
    """One example, in plain Python: the definition of the paper, not PyTorch's."""
    def softmax(z):
        m = max(z)
        e = [math.exp(v - m) for v in z]
        return [v / sum(e) for v in e]
    q_t, q_s = softmax([v / T for v in teacher]), softmax([v / T for v in student])
    kl = sum(t * math.log(t / s) for t, s in zip(q_t, q_s))
    ce = -math.log(softmax(student)[label])
    return alpha * T * T * kl + (1 - alpha) * ce


def test_batch_is_per_example_kl_averaged_over_batch_not_classes():
    g = torch.Generator().manual_seed(0)
    student = torch.randn(4, 10, generator=g, dtype=torch.float64) * 3
    teacher = torch.randn(4, 10, generator=g, dtype=torch.float64) * 3
    labels = [3, 1, 4, 1]
    for T, alpha in [(1, 1.0), (4, 0.9), (20, 0.5), (2.5, 0.0)]:
        expected = sum(reference_loss(s.tolist(), t.tolist(), y, T, alpha)
                       for s, t, y in zip(student, teacher, labels)) / 4
        got = distillation_loss(student, teacher, torch.tensor(labels), T, alpha).item()
        assert abs(got - expected) < 1e-9 * max(1, abs(expected)), (T, alpha)


def test_kl_is_zero_when_student_equals_teacher():
    logits = torch.randn(8, 10, dtype=torch.float64, requires_grad=True)
    loss = distillation_loss(logits, logits.detach(), torch.zeros(8, dtype=torch.long), 20, 1.0)
    loss.backward()
    assert abs(loss.item()) < 1e-12
    assert logits.grad.abs().max().item() < 1e-12


def test_alpha_zero_is_plain_cross_entropy_whatever_the_teacher():
    student, labels = torch.randn(5, 10), torch.tensor([0, 1, 2, 3, 4])
    for teacher in (torch.randn(5, 10), torch.randn(5, 10) * 100):
        assert torch.equal(distillation_loss(student, teacher, labels, 7, 0.0),
                           F.cross_entropy(student, labels))


def soft_gradient(student, teacher, T, with_t_squared):
    z = student.clone().requires_grad_(True)
    loss = distillation_loss(z, teacher, torch.zeros(len(z), dtype=torch.long), T, 1.0)
    (loss if with_t_squared else loss / T ** 2).backward()
    return z.grad


def test_t_squared_keeps_the_soft_gradient_of_the_same_order():
    g = torch.Generator().manual_seed(1)
    student = torch.randn(16, 10, generator=g, dtype=torch.float64)
    teacher = torch.randn(16, 10, generator=g, dtype=torch.float64) * 2
    bare = [soft_gradient(student, teacher, T, False).norm().item() for T in (10, 20, 40)]
    scaled = [soft_gradient(student, teacher, T, True).norm().item() for T in (10, 20, 40)]
    for lo, hi in zip(bare[:-1], bare[1:]):
        assert 3.6 < lo / hi < 4.4      # doubling T quarters the bare soft gradient
    for lo, hi in zip(scaled[:-1], scaled[1:]):
        assert 0.9 < lo / hi < 1.1      # with T^2 it stays put


def test_high_temperature_gradient_is_logit_matching():
    # Paper, eq. 3-4: at high T, dC/dz_i -> (z_i - v_i) / (N T^2) for zero-meaned logits;
    # with the T^2 factor and a batch of B, the gradient is (z_i - v_i) / (N B).
    g = torch.Generator().manual_seed(2)
    z = torch.randn(3, 10, generator=g, dtype=torch.float64)
    v = torch.randn(3, 10, generator=g, dtype=torch.float64)
    z, v = z - z.mean(1, keepdim=True), v - v.mean(1, keepdim=True)
    grad = soft_gradient(z, v, 1000.0, True)
    expected = (z - v) / (10 * 3)
    assert torch.allclose(grad, expected, rtol=0, atol=1e-3 * expected.abs().max().item())
    # ...and at T = 1 it is not (very negative logits are ignored there).
    assert not torch.allclose(soft_gradient(z, v, 1.0, True), expected, atol=1e-2)


def test_the_readme_snippet_is_this_function_and_runs_on_its_own():
    """The README promises a function to copy: its block must be the code in losses.py, with
    its import, and work pasted into an empty module."""
    import inspect
    import os
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "README.md")) as f:
        readme = f.read()
    snippet = next(block.split("```", 1)[0] for block in readme.split("```python\n")[1:]
                   if "def distillation_loss" in block)
    assert inspect.getsource(distillation_loss) in snippet
    namespace = {}
    exec(snippet, namespace)  # a fresh module: only what the snippet imports itself
    student, teacher = torch.randn(5, 10), torch.randn(5, 10)
    labels = torch.tensor([0, 3, 9, 1, 1])
    assert torch.equal(namespace["distillation_loss"](student, teacher, labels, 4.0, 0.7),
                       distillation_loss(student, teacher, labels, 4.0, 0.7))


def test_losses_py_imports_nothing_of_the_project():
    from test_scripts import project_imports
    assert project_imports("losses.py") == set()
    assert losses.METHODS == {"kd": distillation_loss, "dkd": dkd_loss}


def dkd_of(student, teacher, labels, T, alpha, a, b):
    return dkd_loss(torch.tensor(student, dtype=torch.float64),
                    torch.tensor(teacher, dtype=torch.float64), torch.tensor(labels), T, alpha,
                    dkd_alpha=a, dkd_beta=b).item()


def test_dkd_on_three_classes_by_hand():
    # Teacher p = (1/2, 1/3, 1/6) (logits ln 3, ln 2, 0), student (1/3, 1/3, 1/3), target class 0.
    # Binary (target, others): teacher (1/2, 1/2), student (1/3, 2/3):
    tckd = 0.5 * math.log(0.5 / (1 / 3)) + 0.5 * math.log(0.5 / (2 / 3))
    # Classes 1, 2 only, renormalized: teacher (1/3, 1/6) / (1/2) = (2/3, 1/3), student (1/2, 1/2):
    nckd = 2 / 3 * math.log((2 / 3) / 0.5) + 1 / 3 * math.log((1 / 3) / 0.5)
    assert tckd == pytest.approx(0.5 * math.log(9 / 8)) and nckd == pytest.approx(math.log(32 / 27) / 3)
    assert abs(tckd - 0.0588915) < 1e-6 and abs(nckd - 0.0566330) < 1e-6
    teacher, student = [[math.log(3), math.log(2), 0.0]], [[0.0, 0.0, 0.0]]
    assert dkd_of(student, teacher, [0], 1, 1.0, 1, 0) == pytest.approx(tckd, abs=1e-12)
    assert dkd_of(student, teacher, [0], 1, 1.0, 0, 1) == pytest.approx(nckd, abs=1e-12)
    assert dkd_of(student, teacher, [0], 1, 1.0, 1, 8) == pytest.approx(tckd + 8 * nckd, abs=1e-12)
    # alpha splits soft and hard as in KD: CE of a uniform student = ln 3
    assert dkd_of(student, teacher, [0], 1, 0.5, 2, 3) == pytest.approx(
        0.5 * (2 * tckd + 3 * nckd) + 0.5 * math.log(3), abs=1e-12)
    # At T = 2 the doubled teacher logits give the same distributions; the soft term gains T^2 = 4
    # (the uniform student stays uniform, its CE stays ln 3)
    doubled = [[2 * math.log(3), 2 * math.log(2), 0.0]]
    assert dkd_of(student, doubled, [0], 2, 0.5, 1, 8) == pytest.approx(
        0.5 * 4 * (tckd + 8 * nckd) + 0.5 * math.log(3), abs=1e-12)
    # the target is what splits the classes: with target 2, the binary pair is (1/6, 5/6)
    tckd2 = 1 / 6 * math.log((1 / 6) / (1 / 3)) + 5 / 6 * math.log((5 / 6) / (2 / 3))
    nckd2 = 0.6 * math.log(0.6 / 0.5) + 0.4 * math.log(0.4 / 0.5)  # (1/2, 1/3) / (5/6)
    assert dkd_of(student, teacher, [2], 1, 1.0, 1, 1) == pytest.approx(tckd2 + nckd2, abs=1e-12)


def reference_dkd(student, teacher, label, T, alpha, a, b):
    """One example, in plain Python, straight from the definitions of Zhao et al. 2022."""
    def softmax(z):
        m = max(z)
        e = [math.exp(v - m) for v in z]
        return [v / sum(e) for v in e]
    p_t, p_s = softmax([v / T for v in teacher]), softmax([v / T for v in student])
    binary_t, binary_s = [p_t[label], 1 - p_t[label]], [p_s[label], 1 - p_s[label]]
    others_t = [p / (1 - p_t[label]) for i, p in enumerate(p_t) if i != label]
    others_s = [p / (1 - p_s[label]) for i, p in enumerate(p_s) if i != label]
    tckd = sum(t * math.log(t / s) for t, s in zip(binary_t, binary_s))
    nckd = sum(t * math.log(t / s) for t, s in zip(others_t, others_s))
    ce = -math.log(softmax(student)[label])
    return alpha * T * T * (a * tckd + b * nckd) + (1 - alpha) * ce


def test_dkd_batch_is_the_per_example_definition_averaged_over_the_batch():
    g = torch.Generator().manual_seed(3)
    student = torch.randn(5, 10, generator=g, dtype=torch.float64) * 3
    teacher = torch.randn(5, 10, generator=g, dtype=torch.float64) * 3
    labels = [3, 1, 4, 1, 5]
    for T, alpha, a, b in [(1, 1.0, 1, 8), (4, 0.9, 1, 8), (20, 0.5, 2, 0.5), (2.5, 0.0, 1, 8)]:
        expected = sum(reference_dkd(s.tolist(), t.tolist(), y, T, alpha, a, b)
                       for s, t, y in zip(student, teacher, labels)) / 5
        got = dkd_loss(student, teacher, torch.tensor(labels), T, alpha, a, b).item()
        assert abs(got - expected) < 1e-9 * max(1, abs(expected)), (T, alpha, a, b)


def test_kd_is_tckd_plus_one_minus_the_teachers_target_probability_times_nckd():
    # Zhao et al. 2022, eq. 7: KD = TCKD + (1 - p_t^T) NCKD, p_t^T the teacher's probability of
    # the target class (at temperature T), for each example.
    g = torch.Generator().manual_seed(4)
    for T in (1.0, 4.0, 20.0):
        for _ in range(5):
            student = torch.randn(1, 10, generator=g, dtype=torch.float64) * 3
            teacher = torch.randn(1, 10, generator=g, dtype=torch.float64) * 3
            label = torch.randint(0, 10, (1,), generator=g)
            kd = distillation_loss(student, teacher, label, T, 1.0).item()
            tckd = dkd_loss(student, teacher, label, T, 1.0, 1.0, 0.0).item()
            nckd = dkd_loss(student, teacher, label, T, 1.0, 0.0, 1.0).item()
            p_target = F.softmax(teacher / T, dim=1)[0, label].item()
            assert kd == pytest.approx(tckd + (1 - p_target) * nckd, rel=1e-10, abs=1e-12)
            # DKD's own default weights (1, 8) are not KD unless NCKD vanishes
            assert dkd_loss(student, teacher, label, T, 1.0, 1.0, 1.0).item() >= kd - 1e-12


def test_dkd_is_zero_for_a_copy_of_the_teacher_plain_ce_at_alpha_zero_and_finite_at_extremes():
    logits = torch.randn(8, 10, dtype=torch.float64, requires_grad=True)
    labels = torch.arange(8) % 10
    loss = dkd_loss(logits, logits.detach(), labels, 4.0, 1.0)
    loss.backward()
    assert abs(loss.item()) < 1e-12 and logits.grad.abs().max().item() < 1e-12
    student, teacher = torch.randn(5, 10), torch.randn(5, 10)
    assert torch.equal(dkd_loss(student, teacher, labels[:5], 7, 0.0, 1.0, 8.0),
                       F.cross_entropy(student, labels[:5]))
    # a teacher sure of the target (p_t = 1 in float32) and huge logits: no nan, no inf
    z = (torch.randn(4, 10) * 1000).requires_grad_(True)
    sure = torch.zeros(4, 10)
    sure[torch.arange(4), labels[:4]] = 1e4
    loss = dkd_loss(z, sure, labels[:4], 1.0, 0.9, 1.0, 8.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()
