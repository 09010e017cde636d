"""Score files: round trip, sidecar contents and every mismatch the reader must catch."""

import hashlib
import json

import numpy as np
import pytest

import scorecast
from scorecast.scorefile import read_scores, score_checksum, sidecar_path, write_scores
from scorecast.validation import ScorecastError

LABELS = np.array([3, 0, 1, 1, 2])
SCORES = np.array([0.1, 1 / 3, 2.5e-17, -4.0, 1e300])
IN_SUBSET = np.array([True, False, True, False, False])
SOURCE = np.array(["computed", "extrapolated", "computed", "extrapolated", "extrapolated"])
CONFIG = {"scorer": "du", "window": 10, "seed": 7, "nested": {"k": [10, 20]}}


@pytest.fixture
def score_file(tmp_path):
    path = tmp_path / "scores.csv"
    write_scores(path, SCORES, LABELS, IN_SUBSET, SOURCE, CONFIG)
    return path


def test_round_trip(score_file):
    frame = read_scores(score_file, labels=LABELS)
    assert list(frame.columns) == ["index", "label", "score", "in_subset", "source"]
    np.testing.assert_array_equal(frame["index"], np.arange(5))
    np.testing.assert_array_equal(frame["label"], LABELS)
    np.testing.assert_array_equal(frame["score"], SCORES)  # floats round-trip exactly
    np.testing.assert_array_equal(frame["in_subset"], IN_SUBSET)
    assert frame["in_subset"].dtype == bool
    assert list(frame["source"]) == list(SOURCE)
    assert frame.attrs["sidecar"]["config"] == CONFIG


def test_sidecar_contents(score_file):
    meta = json.loads(sidecar_path(score_file).read_text())
    assert sidecar_path(score_file).name == "scores.csv.json"
    assert meta["n"] == 5
    assert meta["label_checksum"] == hashlib.sha256(LABELS.astype("<i8").tobytes()).hexdigest()
    by_hand = hashlib.sha256(SCORES.astype("<f8").tobytes() + IN_SUBSET.astype(np.uint8).tobytes() + "\n".join(SOURCE).encode())
    assert meta["score_checksum"] == by_hand.hexdigest() == score_checksum(SCORES, IN_SUBSET, SOURCE)
    assert meta["config"] == CONFIG and meta["seed"] == 7
    assert meta["scorecast_version"] == scorecast.__version__
    assert meta["columns"] == ["index", "label", "score", "in_subset", "source"]
    assert sorted(p.name for p in score_file.parent.iterdir()) == ["scores.csv", "scores.csv.json"]  # no temp files


def test_single_source_string_and_no_seed(tmp_path):
    path = tmp_path / "s.csv"
    write_scores(path, SCORES, LABELS, IN_SUBSET, "computed", {"scorer": "random"})
    frame = read_scores(path)
    assert set(frame["source"]) == {"computed"}
    assert frame.attrs["sidecar"]["seed"] is None


def test_overwrite_replaces_file(score_file):
    write_scores(score_file, SCORES[:2], LABELS[:2], IN_SUBSET[:2], "computed", CONFIG)
    assert len(read_scores(score_file)) == 2


def test_missing_sidecar(score_file):
    sidecar_path(score_file).unlink()
    with pytest.raises(ScorecastError, match="has no sidecar"):
        read_scores(score_file)


def test_missing_file(tmp_path):
    with pytest.raises(ScorecastError, match="does not exist"):
        read_scores(tmp_path / "absent.csv")


def test_row_count_disagrees_with_sidecar(score_file):
    lines = score_file.read_text().splitlines(keepends=True)
    score_file.write_text("".join(lines[:-1]))
    with pytest.raises(ScorecastError, match="sidecar says n=5"):
        read_scores(score_file)


def test_label_column_disagrees_with_sidecar(score_file):
    text = score_file.read_text().replace("\n0,3,", "\n0,4,")
    score_file.write_text(text)
    with pytest.raises(ScorecastError, match="checksum"):
        read_scores(score_file)


@pytest.mark.parametrize("labels", [LABELS[:4], np.array([3, 0, 1, 2, 1])])
def test_labels_of_another_dataset(score_file, labels):
    with pytest.raises(ScorecastError, match="belongs to another dataset or sample order"):
        read_scores(score_file, labels=labels)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"source": "predicted"}, "source"),
        ({"source": SOURCE[:3]}, "source must be one string"),
        ({"in_subset": IN_SUBSET.astype(int)}, "in_subset"),
        ({"labels": LABELS[:3]}, "labels has 3 entries"),
        ({"scores": np.array([np.nan, 1, 2, 3, 4])}, "NaN"),
        ({"config": {"seed": np.int64(1), "x": object()}}, "JSON-serialisable"),
        ({"config": ["seed", 1]}, "config must be a dict"),
    ],
)
def test_write_errors(tmp_path, kwargs, match):
    args = {"scores": SCORES, "labels": LABELS, "in_subset": IN_SUBSET, "source": SOURCE, "config": CONFIG, **kwargs}
    with pytest.raises(ScorecastError, match=match):
        write_scores(tmp_path / "bad.csv", **args)
    assert not list(tmp_path.iterdir())  # nothing half-written


def _rows(path):
    """The data rows of a score file as lists of fields (header dropped)."""
    return [line.split(",") for line in path.read_text().splitlines()[1:]]


def _write_rows(path, rows):
    path.write_text("index,label,score,in_subset,source\n" + "".join(",".join(row) + "\n" for row in rows))


@pytest.mark.parametrize(
    "row, column, value, match",
    [
        (1, 2, "nan", "1 NaN or infinite scores \\(first in row 1\\)"),
        (4, 2, "inf", "NaN or infinite scores \\(first in row 4\\)"),
        (0, 2, "-inf", "NaN or infinite"),
        (2, 4, "predicted", r"source values \['predicted'\]"),
        (2, 4, "NA", r"source values \['NA'\]"),
        (2, 4, "", r"source values \[''\]"),
    ],
)
def test_non_finite_scores_and_unknown_sources_are_refused_on_read(score_file, row, column, value, match):
    rows = _rows(score_file)
    rows[row][column] = value
    _write_rows(score_file, rows)
    with pytest.raises(ScorecastError, match=match) as err:
        read_scores(score_file)
    assert str(score_file) in str(err.value)


@pytest.mark.parametrize("edit", ["swap two scores", "change a score", "flip in_subset", "swap the sources"])
def test_edited_score_columns_are_detected(score_file, edit):
    rows = _rows(score_file)
    if edit == "swap two scores":
        rows[0][2], rows[1][2] = rows[1][2], rows[0][2]
    elif edit == "change a score":
        rows[3][2] = "-4.000001"
    elif edit == "flip in_subset":
        rows[1][3] = "True"
    else:
        rows[0][4], rows[1][4] = rows[1][4], rows[0][4]
    _write_rows(score_file, rows)
    with pytest.raises(ScorecastError, match="score, in_subset or source column of .*checksum"):
        read_scores(score_file)


@pytest.mark.parametrize(
    "content",
    [b"\x89PNG\r\n\x1a\n\x00\x00binary", b"", b"index,label,score,in_subset,source\n0,3,abc,True,computed\n",
     b"index,label,score,in_subset,source\n0,3,0.1,maybe,computed\n", b"index,label\n0,3,0.1,True,computed,extra\n"],
    ids=["binary", "empty", "score not a number", "in_subset not a bool", "ragged rows"],
)
def test_unreadable_score_file_names_the_file(score_file, content):
    score_file.write_bytes(content)
    with pytest.raises(ScorecastError, match="score file") as err:
        read_scores(score_file)
    assert str(score_file) in str(err.value)


@pytest.mark.parametrize(
    "content, match",
    [("{not json", "cannot read the sidecar"), ('["a list"]', "lacks"), ('{"n": 5, "columns": []}', r"lacks \['label_checksum', 'score_checksum'\]"),
     (b"\xff\xfe\x00", "cannot read the sidecar")],
)
def test_damaged_sidecar_names_both_files(score_file, content, match):
    sidecar = sidecar_path(score_file)
    sidecar.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ScorecastError, match=match) as err:
        read_scores(score_file)
    assert str(score_file) in str(err.value) and str(sidecar) in str(err.value)
