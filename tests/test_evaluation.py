"""facecluster.cluster.evaluation on small examples whose scores are worked out by hand."""

from __future__ import annotations

import math
import os

import pytest

from facecluster.cluster.evaluation import evaluate, format_report, read_labels

# Clusters {0,1,2} = a,a,b   {3,4} = b,b   {5} = c (outlier)
PRED = [0, 0, 0, 1, 1, -1]
TRUTH = ["a", "a", "b", "b", "b", "c"]


def test_pairwise_scores_by_hand():
    m = evaluate(PRED, TRUTH)
    # predicted pairs: C(3,2)+C(2,2) = 4; true pairs: C(2,2)+C(3,2) = 4;
    # both: (0,1) and (3,4) = 2.
    assert m["pairwise_precision"] == pytest.approx(0.5)
    assert m["pairwise_recall"] == pytest.approx(0.5)
    assert m["pairwise_f1"] == pytest.approx(0.5)


def test_bcubed_scores_by_hand():
    m = evaluate(PRED, TRUTH)
    # precision per face: 2/3, 2/3, 1/3, 1, 1, 1 -> 14/3 / 6 = 7/9
    # recall per face:    1, 1, 1/3, 2/3, 2/3, 1 -> 14/3 / 6 = 7/9
    assert m["bcubed_precision"] == pytest.approx(7 / 9)
    assert m["bcubed_recall"] == pytest.approx(7 / 9)
    assert m["bcubed_f1"] == pytest.approx(7 / 9)


def test_nmi_and_ari_by_hand():
    m = evaluate(PRED, TRUTH)
    # ARI = (2 - 4*4/15) / ((4+4)/2 - 4*4/15) = 7/22
    assert m["ari"] == pytest.approx(7 / 22)
    # Both partitions have sizes {3, 2, 1}, so NMI = MI / H.
    h = -(3 / 6 * math.log(3 / 6) + 2 / 6 * math.log(2 / 6) + 1 / 6 * math.log(1 / 6))
    mi = 1 / 3 * math.log(2) + 1 / 6 * math.log(2 / 3) + 1 / 3 * math.log(2) + 1 / 6 * math.log(6)
    assert m["nmi"] == pytest.approx(mi / h)


def test_counts():
    m = evaluate(PRED, TRUTH)
    assert (m["faces"], m["unlabelled"], m["identities"], m["identities_repeated"]) == (6, 0, 3, 2)
    assert (m["clusters"], m["outliers"]) == (2, 1)


def test_outliers_are_separate_clusters_not_one():
    # Two -1 faces of different people must not count as a predicted pair.
    m = evaluate([-1, -1, 0, 0], ["x", "y", "z", "z"])
    assert m["pairwise_precision"] == 1.0
    assert m["pairwise_recall"] == 1.0
    assert m["bcubed_f1"] == 1.0
    assert m["ari"] == pytest.approx(1.0)
    assert (m["clusters"], m["outliers"]) == (1, 2)
    # ... and two -1 faces of the *same* person are a missed pair.
    m = evaluate([-1, -1], ["x", "x"])
    assert m["pairwise_recall"] == 0.0
    assert m["pairwise_f1"] == 0.0
    assert m["bcubed_recall"] == pytest.approx(0.5)


def test_everything_in_one_cluster():
    m = evaluate([0, 0, 0, 0], ["a", "a", "b", "b"])
    assert m["pairwise_precision"] == pytest.approx(2 / 6)
    assert m["pairwise_recall"] == 1.0
    assert m["bcubed_precision"] == pytest.approx(0.5)
    assert m["ari"] == pytest.approx(0.0)


def test_label_values_do_not_matter():
    assert evaluate([7, 7, 3, -1], ["p", "p", "q", "r"]) == evaluate([0, 0, 1, -1], ["p", "p", "q", "r"])


def test_unlabelled_faces_are_left_out():
    m = evaluate([0, 0, 1, 0], ["a", "a", "b", None])
    assert (m["faces"], m["unlabelled"]) == (3, 1)
    assert m["pairwise_f1"] == 1.0


def test_evaluate_rejects_bad_input():
    with pytest.raises(ValueError, match="entries"):
        evaluate([0, 1], ["a"])
    with pytest.raises(ValueError, match="nothing to score"):
        evaluate([0, 1], [None, None])
    with pytest.raises(ValueError, match="integers"):
        evaluate([0.5, 1.0], ["a", "b"])


def test_format_report():
    text = format_report(evaluate(PRED, TRUTH))
    assert "pairwise:        precision 0.500  recall 0.500  F1 0.500" in text
    assert "BCubed:          precision 0.778  recall 0.778  F1 0.778" in text
    assert "clusters found:  2, outliers: 1" in text
    assert "identities:      3 (2 with 2+ faces)" in text
    assert "unlabelled" not in text
    assert "(1 unlabelled, not scored)" in format_report(evaluate([0, 0, 1], ["a", "a", None]))


# --- read_labels -------------------------------------------------------------


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "dataset"
    for rel in ("alice/1.jpg", "alice/2.jpg", "bob/1.jpg", "_multi_face/group.jpg", "loose.jpg"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    return root


def test_read_labels_folders(tree):
    paths = [str(tree / p) for p in ("alice/1.jpg", "bob/1.jpg", "_multi_face/group.jpg", "loose.jpg")]
    assert read_labels("folders", paths, str(tree)) == ["alice", "bob", None, None]


def test_read_labels_folders_with_relative_paths(tree, monkeypatch):
    monkeypatch.chdir(tree.parent)
    assert read_labels("folders", ["dataset/alice/1.jpg", "dataset/bob/1.jpg"], None) == ["alice", "bob"]


def test_read_labels_csv(tree):
    key = tree.parent / "key.csv"
    key.write_text(
        "path,identity\n"
        "alice/1.jpg,Alice\n"
        "./bob/1.jpg,Bob\n"         # normalised before matching
        "alice\\2.jpg,Alice\n"      # Windows separators too
        "_multi_face/group.jpg,X\n"  # "_" folders stay unlabelled
        "loose.jpg,\n",             # empty identity = unlabelled
        encoding="utf-8",
    )
    paths = [str(tree / p) for p in ("alice/1.jpg", "alice/2.jpg", "bob/1.jpg", "_multi_face/group.jpg", "loose.jpg")]
    paths.append(str(tree.parent / "elsewhere.jpg"))  # no row
    assert read_labels(str(key), paths, str(tree)) == ["Alice", "Alice", "Bob", None, None, None]


def test_read_labels_csv_with_bom_and_paths_as_given(tree, monkeypatch):
    key = tree / "key.csv"
    key.write_text("\ufeffpath,identity\ndataset/alice/1.jpg,A\n", encoding="utf-8")
    monkeypatch.chdir(tree.parent)
    assert read_labels(str(key), ["dataset/alice/1.jpg", "dataset/bob/1.jpg"], None) == ["A", None]


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "header"),
        ("file,name\na.jpg,x\n", "header"),
        ("path,identity\na.jpg\n", "line 2: expected 2 fields"),
        ("path,identity\na.jpg,x,y\n", "line 2: expected 2 fields"),
        ("path,identity\na.jpg,x\n./a.jpg,y\n", "line 3: 'a.jpg' already labelled 'x'"),
        ("path,identity\n,x\n", "line 2: empty path"),
    ],
)
def test_read_labels_rejects_malformed_csv(tmp_path, content, message):
    key = tmp_path / "key.csv"
    key.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        read_labels(str(key), ["a.jpg"], str(tmp_path))


def test_read_labels_rejects_missing_and_binary_csv(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_labels(str(tmp_path / "nope.csv"), ["a.jpg"], None)
    key = tmp_path / "key.csv"
    key.write_bytes(b"\xff\xfe\x00\x81binary")
    with pytest.raises(ValueError, match="UTF-8"):
        read_labels(str(key), ["a.jpg"], None)


def test_read_labels_on_real_lfw(lfw):
    paths = [str(lfw / "AJ_Cook" / "AJ_Cook_0001.jpg"), os.path.join(str(lfw), "Aaron_Eckhart", "Aaron_Eckhart_0001.jpg")]
    assert read_labels("folders", paths, str(lfw)) == ["AJ_Cook", "Aaron_Eckhart"]


def test_only_the_largest_face_of_a_photo_keeps_its_label():
    from facecluster.cluster.evaluation import primary_face_labels

    records = [
        {"imagePath": "a.jpg", "loc": (0, 10, 10, 0)},  # 100 px^2: a bystander
        {"imagePath": "a.jpg", "loc": (0, 50, 50, 0)},  # 2500 px^2: the subject
        {"imagePath": "b.jpg", "loc": (0, 5, 5, 0)},  # alone in its photo
    ]
    assert primary_face_labels(records, ["ann", "ann", "bob"]) == [None, "ann", "bob"]
