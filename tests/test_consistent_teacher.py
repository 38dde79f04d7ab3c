"""The consistent teacher's cached targets (the teacher's logits of every shifted and flipped
view, looked up per image) against the live teacher run on the same shifted batch, and
--precision bf16 on a tiny run."""
import torch

import checkpoint
import dataset
import distillation
import layers
import train
from conftest import read_json


def test_each_image_gets_the_view_its_index_names():
    images = torch.randint(0, 256, (50, 784), dtype=torch.uint8)
    plain = dataset.augment(images, torch.Generator().manual_seed(4), 2, True)
    shifted, views = dataset.augment(images, torch.Generator().manual_seed(4), 2, True, views=True)
    assert torch.equal(plain, shifted), "asking for the views changes no random draw"
    assert views.min() >= 0 and views.max() < dataset.view_count(2, True) == 50
    for i in range(len(images)):
        assert torch.equal(dataset.view_of(images[i:i + 1], int(views[i]), 2), shifted[i:i + 1])


def test_the_epoch_order_gathered_with_the_shifts_is_the_order_then_the_shifts():
    images = torch.randint(0, 256, (60, 784), dtype=torch.uint8)
    order = torch.randperm(60, generator=torch.Generator().manual_seed(3))
    for shift, flip in ((2, False), (2, True), (0, True), (0, False)):
        fused = dataset.augment(images, torch.Generator().manual_seed(5), shift, flip, views=True,
                                order=order)
        apart = dataset.augment(images[order], torch.Generator().manual_seed(5), shift, flip,
                                views=True)
        assert all(torch.equal(a, b) for a, b in zip(fused, apart)), (shift, flip)


def test_view_zero_is_the_largest_shift_up_and_left_and_the_flip_mirrors():
    image = torch.zeros(1, 784, dtype=torch.uint8)
    image.view(28, 28)[10, 12] = 255
    up_left = dataset.view_of(image, 0, 2).view(28, 28)
    assert up_left[8, 10] == 255 and up_left.sum() == 255       # (dy, dx) = (-2, -2)
    centre = dataset.view_of(image, 12, 2).view(28, 28)          # (0, 0): the image itself
    assert torch.equal(centre, image.view(28, 28))
    mirrored = dataset.view_of(image, 25 + 12, 2).view(28, 28)  # unshifted, flipped
    assert mirrored[10, 27 - 12] == 255 and mirrored.sum() == 255


def test_cached_logits_equal_the_live_teacher_on_the_same_shifted_batch(trained):
    teacher = checkpoint.load_net(trained["teacher"], "cpu")
    images, _ = dataset.load(trained["data"], True)
    cache = distillation.teacher_targets(teacher, images, 2, False, epochs=100)
    assert cache.shape == (len(images), 25, 10)
    generator = torch.Generator().manual_seed(7)
    order = torch.randperm(len(images), generator=generator)
    shifted, looked_up = train.augment_with_targets(images, cache, order, generator, 2, False)
    with torch.no_grad():
        live = torch.cat([teacher(shifted[i:i + 100]) for i in range(0, len(images), 100)])
    assert not torch.equal(shifted, images)
    torch.testing.assert_close(looked_up, live, rtol=1e-5, atol=1e-5)


def test_flips_without_shifts_are_taught_on_the_flipped_images(trained):
    # before the cache, flips with no jitter paired unflipped teacher logits with flipped images
    teacher = checkpoint.load_net(trained["teacher"], "cpu")
    images, _ = dataset.load(trained["data"], True)
    cache = distillation.teacher_targets(teacher, images, 0, True, epochs=10)
    mirrored = images.view(-1, 28, 28).flip(2).reshape(len(images), -1)
    torch.testing.assert_close(cache[:, 1], layers.logits_of(teacher, mirrored))
    torch.testing.assert_close(cache[:, 0], layers.logits_of(teacher, images))


def run_student(trained, **options):
    teacher = checkpoint.load_net(trained["teacher"], "cpu")
    calls = []
    teacher.register_forward_hook(lambda module, inputs, output: calls.append(len(inputs[0])))
    params = distillation.tp.LocalParams(distill_epochs=10, distill_batch_size=100, T=4.0,
                                         alpha=0.9, distill_warmup_steps=0)
    student = train.init_net({"hidden": [16, 16]}, 0, "cpu")
    history, _ = distillation.distill(student, teacher, dataset.load(trained["data"], True),
                                      dataset.load(trained["data"], False), params, 0, jitter=1,
                                      **options)
    return student, history, calls


def test_a_run_with_the_cache_trains_as_the_live_teacher_does(trained, capsys):
    cached, cached_history, cached_calls = run_student(trained)
    assert "teacher targets cached: 9 views x 400 images" in capsys.readouterr().out
    live, live_history, live_calls = run_student(trained, view_cache_mb=0)
    assert "teacher runs live" in capsys.readouterr().out
    assert cached_calls == [400] * 9 and live_calls == [100] * 40  # 9 views; 4 batches x 10 epochs
    for a, b in zip(cached_history, live_history):
        assert abs(a["loss"] - b["loss"]) < 1e-4 and abs(a["test_errors"] - b["test_errors"]) <= 1
    for a, b in zip(cached.parameters(), live.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_the_teacher_stays_live_when_its_views_cost_more_than_the_run(trained, capsys):
    teacher = checkpoint.load_net(trained["teacher"], "cpu")
    images, _ = dataset.load(trained["data"], True)
    assert distillation.teacher_targets(teacher, images, 2, False, epochs=24) is None
    assert "25 passes over the data against the run's 24 epochs" in capsys.readouterr().out
    assert distillation.teacher_targets(teacher, images, 2, False, epochs=25, cache_mb=0.3) is None
    assert distillation.teacher_targets(teacher, images, 2, False, epochs=25).shape == (400, 25, 10)


def test_bf16_runs_a_tiny_student_and_says_so_in_its_results(trained, tmp_path):
    out = str(tmp_path / "s.pt")
    [record] = distillation.main(["--data-dir", trained["data"], "--teacher", trained["teacher"],
                                  "--out", out, "--T", "4", "--epochs", "3", "--hidden", "32",
                                  "--precision", "bf16"])
    assert record["precision"] == "bf16" and read_json(out)["precision"] == "bf16"
    losses = [h["loss"] for h in record["history"]]
    assert losses == sorted(losses, reverse=True), "it learns"
    fp32 = distillation.main(["--data-dir", trained["data"], "--teacher", trained["teacher"],
                              "--out", str(tmp_path / "f.pt"), "--T", "4", "--epochs", "3",
                              "--hidden", "32"])[0]
    assert fp32["precision"] == "fp32"
    assert abs(record["history"][-1]["loss"] - fp32["history"][-1]["loss"]) < 0.02
    assert abs(record["test_errors"] - fp32["test_errors"]) <= 5


def test_bf16_forward_passes_are_close_to_fp32_and_cnns_go_channels_last():
    images = torch.randint(0, 256, (20, 784), dtype=torch.uint8)
    for net in (layers.MLP(hidden=[64, 64]), layers.CNN(channels=[8, 16], kernel=3)):
        torch.manual_seed(0)
        fp32 = layers.logits_of(net, images)
        layers.set_precision(net, "bf16")
        bf16 = layers.logits_of(net, images)
        assert bf16.dtype == torch.float32 and not torch.equal(bf16, fp32)
        torch.testing.assert_close(bf16, fp32, rtol=0.05, atol=0.05)
    conv = net.stages[0][0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    layers.set_precision(net, "fp32")
    assert net.stages[0][0].weight.is_contiguous()


def test_the_live_teacher_sees_exactly_the_students_shifted_batch(trained):
    teacher = checkpoint.load_net(trained["teacher"], "cpu")
    student = train.init_net({"hidden": [16, 16]}, 0, "cpu")
    seen = {"teacher": [], "student": []}
    teacher.register_forward_hook(lambda m, inputs, out: seen["teacher"].append(inputs[0].clone()))
    student.register_forward_hook(lambda m, inputs, out: seen["student"].append(inputs[0].clone()))
    images = dataset.load(trained["data"], True)
    params = distillation.tp.LocalParams(distill_epochs=2, distill_batch_size=100)
    distillation.distill(student, teacher, images, dataset.load(trained["data"], False), params, 0,
                         jitter=2, view_cache_mb=0)
    taught = seen["student"][:4] + seen["student"][5:9]  # after each epoch the student is tested
    assert len(seen["teacher"]) == 8 and len(taught) == 8
    for t, s in zip(seen["teacher"], taught):
        assert torch.equal(t, s)
    assert not torch.equal(torch.cat(seen["teacher"][:4]).sort(0).values,
                           images[0].sort(0).values), "the batches are shifted"
