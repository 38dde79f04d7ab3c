"""tools/soft_targets.py: each number against a hand computation, and the tool end to end."""
import json
import math
import statistics as st

import pytest
import torch

import checkpoint
import layers
import soft_targets

L3, L4, L7 = math.log(3), math.log(4), math.log(7)
# 4 images, 10 classes, labels 0, 3, 5, 1. At T = 1 the softmax is exact fractions:
# image 0: exp = 7 and nine 1s (sum 16); image 1 the same on class 3; image 2: 4 (class 5),
# 3 (class 3) and eight 1s (sum 15); image 3: all equal, 1/10 each.
LOGITS = torch.zeros(4, 10)
LOGITS[0, 0], LOGITS[1, 3], LOGITS[2, 5], LOGITS[2, 3] = L7, L7, L4, L3
LABELS = torch.tensor([0, 3, 5, 1])
P = [[7 / 16] + [1 / 16] * 9,
     [1 / 16] * 3 + [7 / 16] + [1 / 16] * 6,
     [1 / 15] * 3 + [3 / 15] + [1 / 15] + [4 / 15] + [1 / 15] * 4,
     [1 / 10] * 10]


def mean(*xs):
    return sum(xs) / len(xs)


def test_the_hand_made_softmax_is_what_the_tool_sees():
    assert torch.allclose(torch.softmax(LOGITS.double(), 1), torch.tensor(P, dtype=torch.double))


def test_each_statistic_matches_a_hand_computation():
    s = soft_targets.statistics(LOGITS, LABELS, 1.0)
    h16 = -(7 / 16 * math.log(7 / 16) + 9 / 16 * math.log(1 / 16))
    h15 = -(4 / 15 * math.log(4 / 15) + 3 / 15 * math.log(3 / 15) + 8 / 15 * math.log(1 / 15))
    assert s["entropy"] == pytest.approx(mean(h16, h16, h15, math.log(10)))
    assert s["p_true"] == pytest.approx(mean(7 / 16, 7 / 16, 4 / 15, 1 / 10))
    # class 3's mass from the images that are not 3s (0, 2 and 3)
    assert s["mass_on_3"] == pytest.approx(mean(1 / 16, 3 / 15, 1 / 10))
    every = mean(1 / 16, 1 / 16, 1 / 15, 1 / 10)  # a class no image is labelled with
    expected = [mean(1 / 16, 1 / 15, 1 / 10),       # 0: images 1, 2, 3
                mean(1 / 16, 1 / 16, 1 / 15),       # 1: images 0, 1, 2
                every, mean(1 / 16, 3 / 15, 1 / 10), every,
                mean(1 / 16, 1 / 16, 1 / 10),       # 5: images 0, 1, 3
                every, every, every, every]
    assert s["mass_on"] == pytest.approx(expected)
    assert s["mass_on"][3] == s["mass_on_3"]
    # image 0: class 3 at 0, the 9 wrong logits all 0; image 2: ln 3 minus (ln 3 + 8 zeros) / 9;
    # image 3: all equal
    assert s["margin_3"] == pytest.approx(mean(0.0, 8 / 9 * L3, 0.0))
    rows = LOGITS.tolist()
    assert s["logit_std"] == pytest.approx(mean(*(st.stdev(r) for r in rows)))
    assert s["logit_std"] == pytest.approx(mean(L7 / math.sqrt(10), L7 / math.sqrt(10),
                                                 st.stdev(rows[2]), 0.0))
    assert s["logit_std_all"] == pytest.approx(st.stdev(sum(rows, [])))
    assert s["train_errors"] == 1  # image 3: a tie, read as class 0, labelled 1


def test_temperature_divides_the_logits():
    cold = soft_targets.statistics(LOGITS, LABELS, 1.0)
    hot = soft_targets.statistics(2 * LOGITS, LABELS, 2.0)
    for key in ("entropy", "p_true", "mass_on_3", "mass_on"):
        assert hot[key] == pytest.approx(cold[key])
    assert hot["logit_std"] == pytest.approx(2 * cold["logit_std"])
    assert hot["margin_3"] == pytest.approx(2 * cold["margin_3"])
    flat = soft_targets.statistics(LOGITS, LABELS, 1e6)  # very hot: uniform targets
    assert flat["entropy"] == pytest.approx(math.log(10))
    assert flat["mass_on"] == pytest.approx([0.1] * 10)


def test_the_tool_end_to_end(trained, tmp_path, capsys):
    out, readme = tmp_path / "res" / "t4.json", tmp_path / "README.md"
    readme.write_text("x\n<!-- teacher_targets:begin -->\n<!-- teacher_targets:end -->\n")
    record = soft_targets.main([trained["teacher"], "--data-dir", trained["data"], "--T", "4",
                                "--out", str(out), "--write", str(readme)])
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(record))
    assert saved["T"] == 4 and saved["split"] == "train" and saved["images"] == 400
    (row,) = saved["teachers"]
    assert set(row) == {"checkpoint", "test_errors", "epochs", "seed", "entropy", "p_true",
                        "mass_on_3", "mass_on", "logit_std", "logit_std_all", "margin_3",
                        "train_errors"}
    assert len(row["mass_on"]) == 10 and 0 < row["entropy"] <= math.log(10)
    assert row["test_errors"] == trained["teacher_record"]["test_errors"] and row["epochs"] == 4
    line = next(l for l in capsys.readouterr().out.splitlines() if trained["teacher"] in l)
    assert line.startswith(f"| `{trained['teacher']}` | {row['test_errors']} | 4 | 1 | ")
    assert line.endswith(f" | {row['margin_3']:.2f} |")
    assert line in readme.read_text()


def test_the_tool_matches_statistics_on_the_teachers_logits(trained):
    import dataset
    net = checkpoint.load_net(trained["teacher"], "cpu", "mnist")
    images, labels = dataset.load(trained["data"], True)
    with torch.no_grad():
        direct = soft_targets.statistics(layers.logits_of(net, images), labels, 20.0)
    (row,) = soft_targets.measure([trained["teacher"]], trained["data"], 20.0)["teachers"]
    assert row["mass_on"] == pytest.approx(direct["mass_on"])


def bad(argv, capsys):
    with pytest.raises(SystemExit) as e:
        soft_targets.main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1
    return err


def test_bad_input_is_one_line_and_exit_2(trained, tmp_path, capsys):
    out = tmp_path / "none" / "x.json"
    common = ["--data-dir", trained["data"], "--out", str(out)]
    assert "no checkpoint" in bad([str(tmp_path / "missing.pt"), *common], capsys)
    for T in ("0", "-1", "nan", "inf"):
        assert "--T" in bad([trained["teacher"], "--T", T, *common], capsys)
    cifar = layers.build({"hidden": [8], "in_features": 3072})  # takes 32x32x3 images, not MNIST
    path = str(tmp_path / "cifar.pt")
    torch.save({"config": cifar.config(), "state_dict": cifar.state_dict()}, path)
    assert "pixels" in bad([trained["teacher"], path, *common], capsys)
    assert not out.parent.exists()  # nothing written
