"""The second hostile battery (issue 20), case by case: each runs the command a careless or hostile user
would, and checks exit code 2 with one line naming the thing (or the documented behaviour), no
traceback, and nothing lost or half-written.

1 export-onnx is atomic · 2 a full disk · 3 hostile config.json · 4 readable but wrong training states ·
5 odd folder entries · 6 arguments · 7 two trainers on one run directory · 8 the log and the umask.
"""

import contextlib
import io
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastdec.cli.main import main
from fastdec.io import save_export
from fastdec.training.state import list_states, load_state
from tests.conftest import tiny_tokenizer

TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp|\..+\.old")


def run(capsys, *argv) -> tuple[int, str]:
    """Exit code and stderr of ``fastdec argv``; argparse's usage errors count as exit code 2."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def refused(code: int, err: str, *names: str) -> None:
    """Exit code 2, one line on stderr (besides progress bars), no traceback, naming each of ``names``."""
    assert code == 2, err
    lines = [line for line in err.split("\n") if line and "\r" not in line]  # tqdm redraws with \r
    assert len(lines) == 1 and lines[0].startswith("fastdec ") and "Traceback" not in err, err
    for name in names:
        assert name in lines[0], (name, err)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def temporaries(directory: Path) -> list[str]:
    return [p.name for p in directory.rglob("*") if TEMPORARY.fullmatch(p.name)]


TRAIN_2_STEPS = ("train", "--preset", "tiny", "--set", "train.steps=2", "--set", "train.ckpt_every=1",
                 "--no-progress")  # fmt: skip


def train(capsys, run_dir, *overrides) -> None:
    sets = [a for o in overrides for a in ("--set", o)]
    code, err = run(capsys, *TRAIN_2_STEPS, *sets, "--run", run_dir)
    assert code == 0, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished tiny run (2 steps, a state after each): states 1 and 2, its log and export."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*TRAIN_2_STEPS, "--run", str(run_dir)]) == 0
    return run_dir


def copy_run(trained: Path, to: Path) -> Path:
    shutil.copytree(trained, to)
    return to


# 1. export-onnx ------------------------------------------------------------------------------------

# Runs `fastdec export-onnx` with the tracing replaced by a tiny graph (the write is what is tested)
# and onnx.save writing half the file and stalling, so the kill lands in the middle of the write.
STALLED_ONNX = textwrap.dedent("""
    import sys, time, types, onnx, torch
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("Identity", ["z"], ["images"])], "g",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1])])
    proto = helper.make_model(graph)
    torch.onnx.export = lambda *a, **k: types.SimpleNamespace(model_proto=proto)
    def stalled_save(proto, path, format=None):
        with open(path, "wb") as f:
            f.write(proto.SerializeToString()[:20])
            f.flush()
        print("writing", flush=True)
        time.sleep(60)
    onnx.save = stalled_save
    from fastdec.cli.main import main
    main(["export-onnx", "--model", sys.argv[1], "--output", sys.argv[2]])
""")


def onnx_student(directory: Path) -> Path:
    tiny_tokenizer("model.num_stages=2", "model.dec_depth=1", "sample.steps=1").save_pretrained(directory)
    return directory


def test_1_export_onnx_killed_while_overwriting_leaves_the_previous_file(tmp_path):
    pytest.importorskip("onnx")
    target = tmp_path / "out" / "decode.onnx"
    target.parent.mkdir()
    target.write_bytes(b"the previous export")
    writer = subprocess.Popen([sys.executable, "-c", STALLED_ONNX, onnx_student(tmp_path / "m"), target],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert writer.stdout.readline() == "writing\n"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert writer.returncode == -signal.SIGKILL
    assert target.read_bytes() == b"the previous export"
    leftovers = [p.name for p in target.parent.iterdir() if p != target]
    assert len(leftovers) == 1 and re.fullmatch(r"\.decode\.onnx\.[a-z0-9_]{8}\.tmp", leftovers[0])


# 2. A full disk ------------------------------------------------------------------------------------


class SmallDisk:
    """A folder on a small file system: a tmpfs mounted for the test (as root), else a file-size
    limit (``RLIMIT_FSIZE``) on the command, run in a subprocess."""

    def __init__(self, root: Path, kind: str):
        self.root, self.kind = root, kind

    @property
    def reason(self) -> str:
        return "no space left on device" if self.kind == "tmpfs" else "file size limit exceeded"

    def run(self, capsys, argv, *, leave: int) -> tuple[int, str]:
        """``fastdec argv`` with ``leave`` bytes free (tmpfs) or a ``leave``-byte limit per file."""
        if self.kind == "fsize":
            limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (leave, resource.RLIM_INFINITY))  # noqa: E731
            done = subprocess.run([sys.executable, "-m", "fastdec", *map(str, argv)], preexec_fn=limit,
                                  capture_output=True, text=True, timeout=120)  # fmt: skip
            return done.returncode, done.stderr.splitlines()[-1] + "\n"  # after progress bars, warnings
        filler = self.root / "filler"
        stat = os.statvfs(self.root)
        with open(filler, "wb") as f:
            os.posix_fallocate(f.fileno(), 0, max(1, stat.f_bavail * stat.f_frsize - leave))
        try:
            return run(capsys, *argv)
        finally:
            filler.unlink()


@pytest.fixture
def small_disk(tmp_path):
    root = tmp_path / "disk"
    root.mkdir()
    mounted = False
    if os.geteuid() == 0 and shutil.which("mount"):
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(root)],
                                 capture_output=True).returncode == 0  # fmt: skip
    if mounted:
        try:
            yield SmallDisk(root, "tmpfs")
        finally:
            subprocess.run(["umount", "-l", str(root)], check=False)
    elif hasattr(resource, "RLIMIT_FSIZE"):
        yield SmallDisk(root, "fsize")
    else:
        pytest.skip("neither a tmpfs mount (needs root) nor RLIMIT_FSIZE is available")


def test_2_a_full_disk_while_saving_a_state_keeps_the_previous_one(capsys, small_disk, trained):
    run_dir = copy_run(trained, small_disk.root / "run")
    (run_dir / "state-00000002.pt").unlink()  # as if killed before state 2: the re-run resumes at 1
    shutil.rmtree(run_dir / "export")
    before = snapshot(run_dir)
    code, err = small_disk.run(capsys, [*TRAIN_2_STEPS, "--run", run_dir], leave=64 * 1024)
    refused(code, err, small_disk.reason, "state-00000002.pt")
    assert {k: v for k, v in snapshot(run_dir).items() if k.startswith("state")} == {
        "state-00000001.pt": before["state-00000001.pt"]
    }
    assert temporaries(run_dir) == [] and not (run_dir / "export").exists()


def test_2_a_full_disk_while_packing_keeps_the_previous_export(capsys, small_disk, export_dir):
    out = small_disk.root / "packed"
    assert main(["pack", "--model", str(export_dir), "--output", str(out), "--fp32"]) == 0
    capsys.readouterr()
    before = snapshot(out)
    argv = ["pack", "--model", export_dir, "--output", out, "--fp32", "--note", "2"]
    code, err = small_disk.run(capsys, argv, leave=16 * 1024)
    refused(code, err, small_disk.reason, str(out))
    assert snapshot(out) == before and temporaries(small_disk.root) == []


def test_2_a_full_disk_while_reconstructing_leaves_no_partial_png(capsys, small_disk, export_dir, tmp_path):
    (tmp_path / "in").mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), np.uint8)).save(
        tmp_path / "in" / "a.png"
    )
    out = small_disk.root / "recon"
    out.mkdir()
    argv = ["reconstruct", "--model", export_dir, "--input", tmp_path / "in", "--output", out, "--steps", "1"]
    code, err = small_disk.run(capsys, argv, leave=0 if small_disk.kind == "tmpfs" else 64)
    refused(code, err, small_disk.reason, "a.png")
    assert list(out.iterdir()) == []  # no 0-byte PNG, no temporary


def test_2_a_full_disk_while_exporting_onnx_keeps_the_previous_file(
    capsys, small_disk, tmp_path, monkeypatch
):
    pytest.importorskip("onnx")
    if small_disk.kind != "tmpfs":
        pytest.skip("the tracing is replaced in this process: needs the tmpfs")
    from onnx import TensorProto, helper

    value = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1 << 16]) for name in ("z", "images")]
    graph = helper.make_graph([helper.make_node("Identity", ["z"], ["images"])], "g", value[:1], value[1:])
    proto = helper.make_model(graph)
    proto.graph.initializer.append(helper.make_tensor("w", TensorProto.FLOAT, [1 << 16], [0.0] * (1 << 16)))
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: type("P", (), {"model_proto": proto})())
    target = small_disk.root / "decode.onnx"
    target.write_bytes(b"the previous export")
    argv = ["export-onnx", "--model", onnx_student(tmp_path / "m"), "--output", target]
    code, err = small_disk.run(capsys, argv, leave=16 * 1024)
    refused(code, err, small_disk.reason, "decode.onnx")
    assert [p.name for p in small_disk.root.iterdir()] == ["decode.onnx"]
    assert target.read_bytes() == b"the previous export"


# 3. A hostile or mistaken config.json --------------------------------------------------------------

HOSTILE_CONFIGS = {
    "a decoder 10**7 blocks deep": (
        lambda p: p["config"]["model"].update(dec_depth=10**7),
        "model.dec_depth",
    ),
    "10**9 sampling steps": (lambda p: p["config"]["sample"].update(steps=[10**9]), "sample.steps"),
    "2**30 pixels a side": (lambda p: p["config"]["model"].update(resolution=2**30), "model.resolution"),
    "10**6 stages": (lambda p: p["config"]["model"].update(num_stages=10**6), "model.num_stages"),
    "a 401-digit width": (lambda p: p["config"]["model"].update(dec_width=10**400), "model.dec_width"),
    "an unknown top-level key": (lambda p: p.update(extra=1), "unknown top-level keys ['extra']"),
    # an export of an older version still holds a train section: it is checked as well
    "a bogus string option": (
        lambda p: p["config"].setdefault("train", {}).update(t_sampling="bogus"),
        "train.t_sampling",
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", sorted(HOSTILE_CONFIGS))
def test_3_a_hostile_config_is_refused_before_any_module_is_built(capsys, export_dir, tmp_path, case):
    edit, name = HOSTILE_CONFIGS[case]
    model = shutil.copytree(export_dir, tmp_path / "model")
    payload = json.loads((model / "config.json").read_text())
    edit(payload)
    (model / "config.json").write_text(json.dumps(payload))
    refused(*run(capsys, "eval", "--model", model, "--limit", "2", "--no-rfid"), "config.json", name)


@pytest.mark.parametrize("text", ['{"a": ' * 100_000 + "1" + "}" * 100_000, " " * (2 << 20) + "{}"])
def test_3_deep_or_huge_json_is_refused_by_size_and_depth(capsys, export_dir, tmp_path, text):
    model = shutil.copytree(export_dir, tmp_path / "model")
    (model / "config.json").write_text(text)
    code, err = run(capsys, "eval", "--model", model, "--limit", "2", "--no-rfid")
    refused(code, err, "config.json")
    assert "nested more than 16 levels" in err or "more than the 1048576" in err


# 4. Training states that are readable but wrong ----------------------------------------------------


def doctored(trained: Path, to: Path, edit) -> Path:
    """A copy of the trained run whose newest state is edited by ``edit(state) -> state``."""
    run_dir = copy_run(trained, to)
    shutil.rmtree(run_dir / "export")
    path = run_dir / "state-00000002.pt"
    torch.save(edit(load_state(path)), path)
    return run_dir


WRONG_STATES = {
    "a tensor of another shape": (
        lambda s: {**s, "model": {**s["model"], "z_null": torch.zeros(1, 3, 3)}}, "size mismatch for z_null"),
    "no EMA": (lambda s: {k: v for k, v in s.items() if k != "ema"}, "KeyError: 'ema'"),
    "step 10**12": (lambda s: {**s, "step": 10**12}, "holds step 1000000000000, not the step 2"),
    "step -5": (lambda s: {**s, "step": -5}, "holds step -5, not the step 2"),
    "an optimiser of another shape": (
        lambda s: {**s, "optimizer": {**s["optimizer"], "state": {
            k: {**v, "exp_avg": torch.zeros(7)} for k, v in s["optimizer"]["state"].items()}}},
        "optimizer entry 'exp_avg' has shape (7,)"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(WRONG_STATES))
def test_4_a_wrong_training_state_is_named_and_kept(capsys, trained, tmp_path, case):
    edit, message = WRONG_STATES[case]
    run_dir = doctored(trained, tmp_path / "run", edit)
    before = snapshot(run_dir)
    refused(*run(capsys, *TRAIN_2_STEPS, "--run", run_dir), "state-00000002.pt", message)
    assert snapshot(run_dir) == before  # nothing touched, nothing exported


def test_4_a_state_beyond_the_run_is_refused(capsys, trained, tmp_path):
    run_dir = doctored(trained, tmp_path / "run", lambda s: s)
    state = load_state(run_dir / "state-00000002.pt")
    torch.save({**state, "step": 9}, run_dir / "state-00000009.pt")
    refused(
        *run(capsys, *TRAIN_2_STEPS, "--run", run_dir),
        "state-00000009.pt holds step 9, outside this run's 0..2",
    )
    assert not (run_dir / "export").exists()


def test_4_a_wrong_distillation_state_is_named(capsys, tmp_path):
    teacher = tmp_path / "teacher"
    tiny_tokenizer("model.num_stages=2").save_pretrained(teacher)
    sets = ["train.steps=1", "train.batch_size=2", "distill.teacher_steps=1"]
    argv = ["distill", "--teacher", teacher, "--run", tmp_path / "run", "--no-progress"]
    argv += [a for s in sets for a in ("--set", s)]
    assert run(capsys, *argv)[0] == 0
    path = tmp_path / "run" / "state-00000001.pt"
    state = load_state(path)
    torch.save({**state, "model": {**state["model"], "z_null": torch.zeros(2)}}, path)
    shutil.rmtree(tmp_path / "run" / "export")
    refused(*run(capsys, *argv), "state-00000001.pt", "size mismatch for z_null")
    assert not (tmp_path / "run" / "export").exists()


# 5. Folders ----------------------------------------------------------------------------------------


def png(path: Path, side: int = 20, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (side, side, 3), np.uint8)).save(path, format="PNG")


def test_5_non_regular_entries_are_reported_and_never_read(capsys, export_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    png(folder / "good.png")
    (folder / "dir.png").mkdir()
    os.mkfifo(folder / "fifo.png")  # reading it would block for ever
    (folder / "zero.png").symlink_to("/dev/zero")  # reading it would never end
    (folder / "dangling.png").symlink_to(folder / "missing.png")
    with pytest.warns(UserWarning, match="4 unreadable"):
        code = main(["reconstruct", "--model", str(export_dir), "--input", str(folder), "--output",
                     str(tmp_path / "out"), "--steps", "1"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "4 unreadable inputs" in out
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["good.png"]
    for name, reason in [("dir.png", "a folder"), ("fifo.png", "a FIFO"), ("zero.png", "a device"),
                         ("dangling.png", "a dangling symbolic link")]:  # fmt: skip
        assert re.search(rf"skipped .*{re.escape(name)}: .*{reason}", out), (name, out)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a folder whatever its mode")
def test_5_an_unreadable_sub_folder_is_reported(capsys, export_dir, tmp_path):
    folder = tmp_path / "in"
    (folder / "locked").mkdir(parents=True)
    png(folder / "good.png")
    png(folder / "locked" / "hidden.png")
    (folder / "locked").chmod(0)
    try:
        with pytest.warns(UserWarning, match="1 unreadable"):
            code = main(["reconstruct", "--model", str(export_dir), "--input", str(folder), "--output",
                         str(tmp_path / "out"), "--steps", "1"])  # fmt: skip
    finally:
        (folder / "locked").chmod(0o755)
    assert code == 0 and "locked: cannot list this folder" in capsys.readouterr().out


def test_5_tiling_reports_an_image_smaller_than_a_tile_and_goes_on(capsys, export_dir, tmp_path):
    (tmp_path / "in").mkdir()
    png(tmp_path / "in" / "a-tiny.png", side=1)
    png(tmp_path / "in" / "b-big.png", side=24)
    code, _ = run(capsys, "reconstruct", "--model", export_dir, "--input", tmp_path / "in", "--output",
                  tmp_path / "out", "--tile", "--steps", "1")  # fmt: skip
    assert code == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["b-big.png"]


def test_5_a_name_clash_is_refused_before_decoding_naming_both(capsys, export_dir, tmp_path, monkeypatch):
    (tmp_path / "in").mkdir()
    png(tmp_path / "in" / "dup.png")
    Image.open(tmp_path / "in" / "dup.png").save(tmp_path / "in" / "dup.jpg")
    import fastdec.eval.evaluate

    monkeypatch.setattr(fastdec.eval.evaluate, "reconstruct", lambda *a, **k: pytest.fail("decoded"))
    for tile in ([], ["--tile"]):
        code, err = run(capsys, "reconstruct", "--model", export_dir, "--input", tmp_path / "in", "--output",
                        tmp_path / "out", "--steps", "1", *tile)  # fmt: skip
        refused(code, err, "'dup.jpg' and 'dup.png'", "dup.png: rename one")
        assert not (tmp_path / "out").exists()


def test_5_a_bad_file_whose_name_is_not_utf8_is_reported_on_a_strict_terminal(
    export_dir, tmp_path, monkeypatch
):
    folder = tmp_path / "in"
    folder.mkdir()
    png(folder / "good.png")
    (Path(os.fsdecode(bytes(folder) + b"/bad-\xff.png"))).write_bytes(b"not an image")
    terminal = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(terminal, encoding="utf-8", errors="strict"))
    with pytest.warns(UserWarning, match="1 unreadable"):
        code = main(["reconstruct", "--model", str(export_dir), "--input", str(folder), "--output",
                     str(tmp_path / "out"), "--steps", "1"])  # fmt: skip
    sys.stdout.flush()
    assert code == 0 and b"skipped " + bytes(folder) + b"/bad-\\xff.png: " in terminal.getvalue()


def deep_tree(root: Path, depth: int) -> None:
    """``depth`` nested folders ``d/d/...`` under ``root`` (deeper than a path may be: made with dir fds)."""
    fd = os.open(root, os.O_RDONLY)
    for _ in range(depth):
        os.mkdir("d", dir_fd=fd)
        fd, parent = os.open("d", os.O_RDONLY, dir_fd=fd), fd
        os.close(parent)
    os.close(fd)


def remove_deep_tree(root: Path, depth: int) -> None:
    fds = [os.open(root, os.O_RDONLY)]
    for _ in range(depth - 1):
        fds.append(os.open("d", os.O_RDONLY, dir_fd=fds[-1]))
    for fd in reversed(fds):
        os.rmdir("d", dir_fd=fd)
        os.close(fd)


def test_5_a_folder_2000_levels_deep_is_a_clear_error(capsys, export_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    png(folder / "good.png")
    deep_tree(folder, 2000)
    try:
        code, err = run(capsys, "reconstruct", "--model", export_dir, "--input", folder, "--output",
                        tmp_path / "out", "--steps", "1")  # fmt: skip
    finally:
        remove_deep_tree(folder, 2000)
    refused(code, err, "is more than 64 folders below", str(folder))


# 6. Arguments --------------------------------------------------------------------------------------

BAD_DECODE_ARGUMENTS = {
    "guidance that overflows": (["--guidance", "1e308"], "guidance must be <= 100, got 1e+308"),
    "10**9 steps": (["--steps", str(10**9)], "steps must be <= 10000, got (1000000000,)"),
    "10**9 total steps": (["--total-steps", str(10**9)], "total_steps must be <= 10000"),
    "steps and total steps": (["--steps", "2", "--total-steps", "4"], "give steps ((2,)) or total_steps (4)"),
}


@pytest.mark.parametrize("case", sorted(BAD_DECODE_ARGUMENTS))
def test_6_bad_decode_arguments_are_refused(capsys, export_dir, case):
    argv, message = BAD_DECODE_ARGUMENTS[case]
    refused(*run(capsys, "eval", "--model", export_dir, "--limit", "2", "--no-rfid", *argv), message)


def test_6_a_seed_past_64_bits_names_the_option(capsys, export_dir):
    code, err = run(capsys, "eval", "--model", export_dir, "--seed", str(2**70))
    assert code == 2 and "argument --seed: must be in [0, 2**63)" in err and "Traceback" not in err


BAD_TRAINING_ARGUMENTS = {
    "a 10**9 width": ("model.dec_width=1000000000", "model.dec_width must be <= 16384, got 1000000000"),
    "two step counts for one stage": ("sample.steps=4/2", "has 2 step counts for model.num_stages=1"),
    "a bogus t_sampling": ("train.t_sampling=bogus", "train.t_sampling must be one of 'logit_normal'"),
    "steps that are not a number": ("train.steps=abc", "train.steps expects an integer, got 'abc'"),
    "a seed past 64 bits": (f"train.seed={2**70}", "train.seed must be <= 9223372036854775807"),
}


@pytest.mark.parametrize("case", sorted(BAD_TRAINING_ARGUMENTS))
def test_6_bad_training_settings_fail_a_dry_run(capsys, case):
    override, message = BAD_TRAINING_ARGUMENTS[case]
    refused(*run(capsys, "train", "--preset", "tiny", "--set", override, "--dry-run"), message)


def test_6_a_failed_start_does_not_block_the_corrected_run(capsys, tmp_path):
    run_dir = tmp_path / "run"
    refused(*run(capsys, "train", "--preset", "tiny", "--set", "train.t_sampling=bogus", "--run", run_dir),
            "train.t_sampling")  # fmt: skip
    assert not run_dir.exists()
    run_dir.mkdir()  # a start that failed after writing its config (e.g. killed before the first state)
    (run_dir / "config.json").write_text(json.dumps({"train": {"t_sampling": "uniform", "steps": 7}}))
    (run_dir / "log.jsonl").write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "lo')
    train(capsys, run_dir, "train.steps=1")
    assert [json.loads(line)["step"] for line in (run_dir / "log.jsonl").read_text().splitlines()] == [1]


def test_6_pack_refuses_to_overwrite_its_own_model(capsys, export_dir, tmp_path):
    model = shutil.copytree(export_dir, tmp_path / "model")
    before = snapshot(model)
    refused(
        *run(capsys, "pack", "--model", model, "--output", tmp_path / "." / "model"), "is the model it packs"
    )
    assert snapshot(model) == before


# 7. Two trainers on one run directory --------------------------------------------------------------

HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from fastdec.training.loop import run_lock
    with run_lock(Path(sys.argv[1])):
        print("locked", flush=True)
        time.sleep(60)
""")


def test_7_a_second_trainer_is_refused_naming_the_holder_and_a_crashed_ones_lock_is_taken_over(
    capsys, tmp_path
):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, run_dir], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        code, err = run(capsys, "train", "--preset", "tiny", "--set", "train.steps=1", "--run", run_dir,
                        "--no-progress")  # fmt: skip
        refused(code, err, f"run directory {run_dir} is in use by process {holder.pid}")
        assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # the second wrote nothing
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (run_dir / ".lock").read_text() == f"{holder.pid}\n"  # stale: its holder died
    train(capsys, run_dir, "train.steps=1")
    assert not (run_dir / ".lock").exists()  # released on exit


# 8. The log after a resume, and the umask ----------------------------------------------------------


def test_8_a_resumed_run_logs_each_step_once(capsys, trained, tmp_path):
    run_dir = copy_run(trained, tmp_path / "run")
    (run_dir / "state-00000002.pt").unlink()  # killed after logging step 2, before its state
    shutil.rmtree(run_dir / "export")
    assert [json.loads(line)["step"] for line in (run_dir / "log.jsonl").read_text().splitlines()] == [1, 2]
    train(capsys, run_dir)
    assert [json.loads(line)["step"] for line in (run_dir / "log.jsonl").read_text().splitlines()] == [1, 2]


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_8_exports_and_states_follow_the_umask(tmp_path, umask):
    from fastdec.training.state import save_state

    previous = os.umask(umask)
    try:
        save_export(tmp_path / "export", {"w": torch.zeros(2)}, {})
        save_state(tmp_path, 1, {"w": torch.zeros(2)})
    finally:
        os.umask(previous)
    assert (tmp_path / "export").stat().st_mode & 0o777 == 0o777 & ~umask
    for path in [tmp_path / "state-00000001.pt", *(tmp_path / "export").iterdir()]:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path
    assert list_states(tmp_path) == [tmp_path / "state-00000001.pt"]
