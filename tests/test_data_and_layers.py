"""Dataset helpers and the MLP, each checked against an independent numpy reference."""

import numpy as np
import pytest
import torch

import dataset
import cli
import train
import training_params as tp
import layers
from layers import MLP


def shifted(image, dy, dx):
    """numpy reference: out[r, c] = image[r - dy, c - dx], zero outside."""
    out = np.zeros_like(image)
    src = image[max(0, -dy):28 - max(0, dy), max(0, -dx):28 - max(0, dx)]
    out[max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
    return out


def test_jitter_is_a_shift_of_at_most_two_pixels():
    images = torch.rand(500, 784)
    out = dataset.augment(images, torch.Generator().manual_seed(0), 2, False).numpy().reshape(-1, 28, 28)
    seen = set()
    for image, result in zip(images.numpy().reshape(-1, 28, 28), out):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if np.array_equal(result, shifted(image, dy, dx))]
        assert len(matches) == 1, "each output is exactly one shift of its input"
        seen.add(matches[0])
    assert len(seen) == 25, "all 25 shifts occur"
    assert (0, 0) in seen and (2, -2) in seen


def test_jitter_zero_is_identity_and_seeded():
    images = torch.rand(50, 784)
    assert dataset.augment(images, torch.Generator(), 0, False) is images
    a = dataset.augment(images, torch.Generator().manual_seed(5), 2, False)
    b = dataset.augment(images, torch.Generator().manual_seed(5), 2, False)
    assert torch.equal(a, b)


def test_class_filter_removes_exactly_the_right_examples():
    labels = torch.tensor([3, 0, 3, 7, 8, 9, 3, 1])
    images = torch.arange(8.).unsqueeze(1).repeat(1, 784)
    kept_images, kept = dataset.filter_classes(images, labels, omit=[3])
    assert kept.tolist() == [0, 7, 8, 9, 1]
    assert kept_images[:, 0].tolist() == [1, 3, 4, 5, 7]   # the same rows, in order
    kept_images, kept = dataset.filter_classes(images, labels, only=[7, 8])
    assert kept.tolist() == [7, 8] and kept_images[:, 0].tolist() == [3, 4]
    assert dataset.filter_classes(images, labels, omit=[3, 0, 7])[1].tolist() == [8, 9, 1]
    assert dataset.filter_classes(images, labels)[1].tolist() == labels.tolist()


def test_random_subset_is_seeded_and_a_subset():
    labels = torch.arange(1000)
    images = labels.float().unsqueeze(1).repeat(1, 784)
    x, y = dataset.random_subset(images, labels, 0.03, seed=4)
    assert len(y) == 30 and len(set(y.tolist())) == 30
    assert torch.equal(x[:, 0].long(), y)
    assert torch.equal(y, dataset.random_subset(images, labels, 0.03, seed=4)[1])
    assert not torch.equal(y, dataset.random_subset(images, labels, 0.03, seed=5)[1])


def test_batches_cover_every_example_once_in_shuffled_order():
    labels = torch.arange(250)
    order = dataset.permutation(250, torch.Generator().manual_seed(0), "cpu")
    x, y = labels.float()[order], labels[order]
    assert torch.equal(x.long(), y) and not torch.equal(y, labels)
    sizes = [len(b[1]) for b in dataset.batches([x, y, None], 100)]
    assert sizes == [100, 100, 50]
    assert sorted(torch.cat([b[1] for b in dataset.batches([x, y], 100)]).tolist()) == list(range(250))


def test_load_mnist_reads_idx_files(tiny_mnist):
    from conftest import synthetic_digits
    images, labels = dataset.load(tiny_mnist, train=True)
    expected_images, expected_labels = synthetic_digits(400, 0)
    assert images.shape == (400, 784) and images.dtype == torch.uint8
    assert labels.tolist() == expected_labels.tolist()
    assert torch.equal(images, torch.tensor(expected_images.reshape(400, 784), dtype=torch.uint8))


def test_max_norm_holds_after_a_step():
    torch.manual_seed(0)
    net = MLP(hidden=[50, 40], in_features=784)
    optimizer = torch.optim.SGD(net.parameters(), lr=10.0)
    loss = torch.nn.functional.cross_entropy(net(torch.rand(64, 784)), torch.randint(0, 10, (64,)))
    loss.backward()
    optimizer.step()
    before = [layer.weight.clone() for layer in net.layers]
    bound = before[1].norm(dim=1).median().item()      # half the units of layer 2 break it
    net.max_norm = bound
    net.apply_max_norm()
    for layer, old in zip(net.layers[:-1], before[:-1]):
        assert layer.weight.norm(dim=1).max().item() <= bound * (1 + 1e-5)
        inside = old.norm(dim=1) <= bound              # units inside the ball are untouched,
        assert torch.equal(layer.weight[inside], old[inside])
        scale = layer.weight[~inside] / old[~inside]    # the others rescaled onto it, not clipped
        expected = (bound / old[~inside].norm(dim=1, keepdim=True)).expand_as(scale)
        assert torch.allclose(scale, expected, rtol=1e-4)
    assert 15 <= int((before[1].norm(dim=1) > bound).sum()) <= 25
    assert torch.equal(net.layers[2].weight, before[2])   # the output layer is unconstrained


def test_mlp_config_rebuilds_the_same_net_and_init_std():
    net = MLP(hidden=[30, 20, 10], dropout_input=0.2, dropout_hidden=0.5, max_norm=3, init_std=0.01)
    assert layers.build(net.config()).config() == net.config()
    assert [l.out_features for l in net.layers] == [30, 20, 10, 10]
    assert abs(net.layers[0].weight.std().item() - 0.01) < 0.001
    assert net.layers[0].bias.abs().max().item() == 0


def test_dropout_only_in_training_and_input_is_standardized():
    net = MLP(hidden=[20, 20], dropout_input=0.5, dropout_hidden=0.5).eval()
    x = torch.rand(4, 784)
    assert torch.equal(net(x), net(x))
    plain = MLP(hidden=[20, 20], standardize=False)
    plain.load_state_dict(net.state_dict())
    assert torch.allclose(net(x), plain.eval()(((x - 0.1307) / 0.3081)), atol=1e-6)
    net.train()
    assert not torch.equal(net(x), net(x))


def test_small_net_and_student_start_from_identical_weights():
    args = cli.make_parser("").parse_args(["--hidden", "800"])
    params = tp.LocalParams()
    small = train.init_net(cli.net_config(args, params, "small"), 7, "cpu")
    student = train.init_net(cli.net_config(args, params, "student"), 7, "cpu")
    other = train.init_net(cli.net_config(args, params, "student"), 8, "cpu")
    for a, b, c in zip(small.state_dict().values(), student.state_dict().values(),
                       other.state_dict().values()):
        assert torch.equal(a, b) and not torch.equal(a, c)
    assert small.config() == student.config() and small.dropout_input == 0 and small.max_norm == 0


@pytest.mark.parametrize("name", ["local", "paper"])
def test_schedules(name):
    p = tp.PARAMS[name]()
    assert tp.lr_at(p, 1.0, 0, 0, 10, p.epochs) == 1.0
    if name == "paper":
        assert abs(tp.lr_at(p, 10.0, 100, 5, 600, 3000) - 10 * 0.998 ** 100) < 1e-12
        assert tp.momentum_at(p, 0) == 0.5 and tp.momentum_at(p, 250) == pytest.approx(0.745)
        assert tp.momentum_at(p, 500) == tp.momentum_at(p, 2999) == 0.99
    else:
        assert tp.lr_at(p, 1.0, p.epochs // 2, 0, 10, p.epochs) == pytest.approx(0.5)
        assert tp.lr_at(p, 1.0, p.epochs - 1, 10, 10, p.epochs) == pytest.approx(0.0, abs=1e-12)


def test_warmup_rises_linearly_then_hands_over_to_the_schedule():
    p = tp.LocalParams()
    cosine = [tp.lr_at(p, 1.0, e, s, 10, 30) for e in range(30) for s in range(10)]
    warm = [tp.lr_at(p, 1.0, e, s, 10, 30, warmup=20) for e in range(30) for s in range(10)]
    # step k of the first 20 steps runs at (k + 1) / 20 of the cosine rate
    assert warm[:20] == pytest.approx([(k + 1) / 20 * cosine[k] for k in range(20)])
    assert warm[20:] == cosine[20:]
    exp = tp.PaperParams()
    assert tp.lr_at(exp, 10.0, 0, 4, 600, 3000, warmup=600) == pytest.approx(10.0 * 5 / 600)


def test_constant_schedule_holds_then_decays_linearly_over_the_last_fifth():
    p = tp.LocalParams(lr_schedule="constant")
    assert tp.check_params(p) is None
    # 10 epochs of 10 steps: full rate up to epoch 8, then 1 - (done - 8) / 2 down to 0
    assert tp.lr_at(p, 0.5, 0, 0, 10, 10) == 0.5
    assert tp.lr_at(p, 0.5, 7, 9, 10, 10) == 0.5
    assert tp.lr_at(p, 0.5, 8, 0, 10, 10) == pytest.approx(0.5)
    assert tp.lr_at(p, 0.5, 9, 0, 10, 10) == pytest.approx(0.25)
    assert tp.lr_at(p, 0.5, 9, 5, 10, 10) == pytest.approx(0.125)
    assert tp.lr_at(p, 0.5, 10, 0, 10, 10) == pytest.approx(0.0, abs=1e-12)
    assert tp.lr_at(p, 0.5, 0, 4, 10, 10, warmup=10) == pytest.approx(0.5 * 5 / 10)
    assert "constant" in tp.check_params(tp.LocalParams(lr_schedule="step"))


def test_warmup_is_at_most_a_quarter_of_the_run():
    assert tp.warmup_length(1200, 36000) == 1200       # 60 epochs of 600 steps
    assert tp.warmup_length(1200, 60) == 15            # a one-epoch demo on a tenth of MNIST
    assert tp.warmup_length(0, 60) == 0


@pytest.mark.parametrize("p", [0.5, 0.2, 0.8])
def test_dropout_keeps_each_element_with_probability_1_minus_p_and_rescales(p):
    torch.manual_seed(0)
    x = torch.ones(400, 1000, requires_grad=True)
    y = layers.dropout(x, p, training=True)
    kept = y != 0
    assert y.unique().tolist() == [0.0, pytest.approx(1 / (1 - p))]
    n = kept.numel()
    sigma = (p * (1 - p) / n) ** 0.5  # the kept fraction's standard error
    assert abs(kept.float().mean().item() - (1 - p)) < 5 * sigma
    # no position is favoured: per column (the bits of one random byte for p = 0.5) and per row
    for axis in (0, 1):
        share = kept.float().mean(axis)
        spread = (p * (1 - p) / kept.shape[axis]) ** 0.5
        assert (share - (1 - p)).abs().max().item() < 6 * spread
    y.sum().backward()  # the gradient passes exactly where the value did, with the same scale
    assert torch.equal(x.grad, y.detach())
    assert torch.equal(layers.dropout(x, p, training=False), x)


def test_uint8_pixels_give_the_same_logits_as_floats_in_0_1():
    net = MLP(hidden=[20, 20]).eval()
    pixels = torch.randint(0, 256, (8, 784), dtype=torch.uint8)
    assert torch.equal(net(pixels), net(pixels.float() / 255.0))


def test_weight_average_follows_the_hand_computed_ema(tiny_mnist):
    """fit with --ema d returns d-averaged weights of the very trajectory it trains without it."""
    import dataset
    import train
    train_set, test_set = (dataset.load(tiny_mnist, split) for split in (True, False))
    params = tp.LocalParams(batch_size=100)
    seen = []

    def recording_loss(net, x, y, extra):
        seen.append([p.detach().clone() for p in net.parameters()])
        return train.hard_label_loss(net, x, y, extra)

    plain = train.init_net({"hidden": [8, 8]}, 1, "cpu")
    train.fit(plain, [*train_set, None], test_set, params, epochs=2, lr=0.05, seed=1,
              batch_loss=recording_loss)
    trajectory = seen + [[p.detach() for p in plain.parameters()]]   # w_0 ... w_8
    expected = [t.clone() for t in trajectory[0]]
    for weights in trajectory[1:]:
        expected = [0.9 * a + 0.1 * w for a, w in zip(expected, weights)]
    averaged = train.init_net({"hidden": [8, 8]}, 1, "cpu")
    history, _ = train.fit(averaged, [*train_set, None], test_set,
                           tp.LocalParams(batch_size=100, ema=0.9), epochs=2, lr=0.05, seed=1,
                           batch_loss=train.hard_label_loss)
    assert all(torch.allclose(a, e, atol=1e-6) for a, e in zip(averaged.parameters(), expected))
    assert history[-1]["test_errors"] == layers.evaluate(averaged, *test_set)[0]
    assert history[-1]["raw_test_errors"] == layers.evaluate(plain, *test_set)[0]
    assert "raw_test_errors" not in train.fit(
        train.init_net({"hidden": [8, 8]}, 1, "cpu"), [*train_set, None], test_set, params,
        epochs=1, lr=0.05, seed=1, batch_loss=train.hard_label_loss)[0][-1]


def test_adamw_has_no_weight_decay_and_ignores_the_momentum_fields():
    import train
    net = torch.nn.Linear(2, 2)
    optimizer = train.make_optimizer(net, tp.LocalParams(optimizer="adamw", momentum=0.0), 1e-3)
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["weight_decay"] == 0
    assert tp.check_params(tp.LocalParams(optimizer="adamw", momentum=0.0)) is None
    assert "--optimizer" in tp.check_params(tp.LocalParams(optimizer="adam"))
    assert "--ema" in tp.check_params(tp.LocalParams(ema=1.0))


def test_the_holdout_limit_is_each_datasets_own_training_size():
    assert [dataset.DATASETS[name].train_count for name in ("mnist", "fashion-mnist", "cifar10",
                                                             "cifar100")] == [60000, 60000, 50000, 50000]
    cli.check_holdout(55000, "mnist")
    with pytest.raises(cli.UsageError, match=r"\[0, 50000\) for cifar10"):
        cli.check_holdout(55000, "cifar10")


def test_the_standardize_help_names_no_one_dataset():
    assert "MNIST's" not in tp.HELP["standardize"] and "its dataset's" in tp.HELP["standardize"]
