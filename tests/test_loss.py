"""The distillation loss against hand-computed values and the paper's gradient claims."""
import math

import torch
import torch.nn.functional as F

from distillation import distillation_loss


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
    """The README promises a function to copy: its block must be the code in distillation.py,
    with its import, and work pasted into an empty module."""
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
