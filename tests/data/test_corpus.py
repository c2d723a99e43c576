"""The bundled photo corpus: its manifest, files, licences and split, and how damage is handled."""

import csv
import hashlib
import shutil
from collections import defaultdict

import pytest
import torch
from PIL import Image

from fastdec.data import (
    CorpusWarning,
    PhotoCrops,
    build_dataset,
    photo_ids,
    skipped_files,
    split_photos,
    subset_order,
    validation_crops,
)
from fastdec.data.corpus import CORPUS_DIR, MANIFEST_COLUMNS, SPLITS, read_manifest

MANIFEST = CORPUS_DIR / "manifest.tsv"


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    with open(MANIFEST, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        assert tuple(reader.fieldnames) == MANIFEST_COLUMNS
        return list(reader)


def test_manifest_lists_the_three_splits(rows):
    counts = defaultdict(int)
    for r in rows:
        counts[r["split"]] += 1
    assert set(counts) == set(SPLITS)
    assert counts["test"] >= 100 and counts["val"] >= 100
    assert 0.7 < counts["train"] / len(rows) < 0.85
    assert len(read_manifest()) == len(rows) > 1000


def test_split_is_by_photo_by_group_and_by_content(rows):
    assert len({r["id"] for r in rows}) == len(rows)  # a photo is listed once, so in one split
    for key in ("group", "sha256"):  # near-duplicate groups and identical files never straddle splits
        splits = defaultdict(set)
        for r in rows:
            splits[r[key]].add(r["split"])
        straddling = {k: v for k, v in splits.items() if len(v) > 1}
        assert not straddling, f"{key}s in several splits: {straddling}"
    ids = {r["id"] for r in rows}
    assert all(r["group"] in ids for r in rows)  # a group is named after its first photo


def test_every_package_with_three_groups_gives_to_val_and_test(rows):
    groups, splits = defaultdict(set), defaultdict(set)
    for r in rows:
        groups[r["package"]].add(r["group"])
        splits[r["package"]].add(r["split"])
    for package, g in groups.items():
        if len(g) >= 3:
            assert {"val", "test"} <= splits[package], package


def test_manifest_covers_every_image_file(rows):
    files = (CORPUS_DIR / "images").rglob("*")
    on_disk = {p.relative_to(CORPUS_DIR).as_posix() for p in files if p.is_file()}
    listed = {r["file"] for r in rows}
    assert on_disk == listed


def test_every_row_has_its_file_its_sha256_and_a_licence(rows):
    for r in rows:
        data = (CORPUS_DIR / r["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == r["sha256"], r["file"]
        folder = r["id"].split("/")[0]
        assert r["file"] == f"images/{r['id']}.jpg"
        licence = CORPUS_DIR / "licenses" / f"{folder}.txt"
        assert licence.is_file() and licence.stat().st_size > 100, licence
        assert r["license"]


def test_stored_images_are_rgb_jpegs_of_the_listed_size(rows):
    for r in rows:
        with Image.open(CORPUS_DIR / r["file"]) as im:  # header only: fast
            assert im.format == "JPEG" and im.mode == "RGB", r["file"]
            assert im.size == (int(r["width"]), int(r["height"])), r["file"]
        assert min(im.size) <= 256
        assert int(r["orig_width"]) >= im.size[0] and int(r["orig_height"]) >= im.size[1]
    total = sum((CORPUS_DIR / r["file"]).stat().st_size for r in rows)
    assert total <= 60 * 2**20


def test_no_reserved_or_excluded_photo(rows):
    for r in rows:
        text = f"{r['package']} {r['path_in_package']}".lower()
        assert "opencv" not in text and "foolbox" not in text and "lena" not in text, text
        assert not (r["package"] == "python3-pywt" and "aero" in text)


def test_val_and_test_crops_never_come_from_train_photos(rows):
    split_of = {r["id"]: r["split"] for r in rows}
    train = set(photo_ids("train"))
    for split in ("val", "test"):
        crops = PhotoCrops(split, 32, length=512, seed=0)
        used = {crops.crop_params(i).name for i in range(512)}
        assert {split_of[u] for u in used} == {split}
        assert not used & train
        assert len(used) > 50  # 512 crops come from many photos, not a few
    train_groups = {r["group"] for r in rows if r["split"] == "train"}
    assert not train_groups & {r["group"] for r in rows if r["split"] != "train"}


def test_validation_crops_are_deterministic():
    a = validation_crops(16, 12, split="test")
    assert torch.equal(a, validation_crops(16, 12, split="test"))
    assert torch.equal(a[:5], validation_crops(16, 5, split="test"))
    assert not torch.equal(a, validation_crops(16, 12, split="val"))


def _small_corpus(tmp_path, rows, per_split=3):
    """A copy of the corpus manifest with ``per_split`` photos of each split, and their files."""
    keep = []
    for split in SPLITS:
        keep += [r for r in rows if r["split"] == split][:per_split]
    with open(tmp_path / "manifest.tsv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(keep)
    for r in keep:
        (tmp_path / r["file"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(CORPUS_DIR / r["file"], tmp_path / r["file"])
    return keep


def test_a_corrupt_or_missing_file_is_reported_and_skipped(tmp_path, rows):
    keep = _small_corpus(tmp_path, rows)
    val = [r for r in keep if r["split"] == "val"]
    truncated = tmp_path / val[0]["file"]
    truncated.write_bytes(truncated.read_bytes()[:500])
    train = [r for r in keep if r["split"] == "train"]
    (tmp_path / train[1]["file"]).unlink()

    with pytest.warns(CorpusWarning, match=val[0]["id"].split("/")[-1]) as caught:
        good = split_photos("val", root=tmp_path)
    assert "corrupt" in str(caught[0].message)
    assert [p.id for p in good] == [r["id"] for r in val[1:]]
    assert skipped_files("val", root=tmp_path)[0][0] == str(truncated)
    with pytest.warns(CorpusWarning, match="missing"):
        assert len(PhotoCrops("train", 16, length=4, root=tmp_path).names) == 2
    crops = validation_crops(16, 20, split="val", root=tmp_path)  # still usable
    assert crops.shape == (20, 3, 16, 16)
    assert len(split_photos("test", root=tmp_path)) == 3  # untouched split: nothing reported


def test_a_split_with_no_intact_file_is_an_error(tmp_path, rows):
    keep = _small_corpus(tmp_path, rows, per_split=2)
    for r in keep:
        if r["split"] == "test":
            (tmp_path / r["file"]).write_bytes(b"not a jpeg")
    with pytest.warns(CorpusWarning), pytest.raises(RuntimeError, match="test"):
        split_photos("test", root=tmp_path)


def test_missing_manifest_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest"):
        split_photos("train", root=tmp_path)


def test_unknown_split_is_an_error():
    with pytest.raises(ValueError, match="split"):
        split_photos("training")


def test_data_scaling_subsets_are_nested_train_photos():
    order = subset_order("train")
    assert sorted(order) == sorted(photo_ids("train"))
    small = build_dataset("photos", 16, photos=10, length=200)
    large = build_dataset("photos", 16, photos=100, length=200)
    used_small = {small.crop_params(i).name for i in range(200)}
    assert used_small == set(order[:10])
    assert set(order[:10]) < set(large.names) == set(order[:100])
    with pytest.raises(ValueError, match="photos applies"):
        build_dataset("/nonexistent", 16, photos=3)
