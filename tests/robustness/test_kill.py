"""kill -9 while checkpoints and exports are written: the previous good files survive, intact.

Two ways in: a writer process killed at random moments (inside a write, too), and a forked writer
that kills itself just before its k-th file-system operation, for every k of one save.
"""

import os
import random
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

import fastdec.io
from fastdec.io import load_export, save_export
from fastdec.tokenizer import Tokenizer
from fastdec.training.state import latest_state, list_states, load_state, save_state
from tests.conftest import tiny_tokenizer

N = 1_000_000  # 4 MB per tensor: a write takes long enough to be killed in the middle
WRITER = """
import sys, torch
from fastdec.io import save_export
from fastdec.training.state import save_state
run, step = sys.argv[1], int(sys.argv[2])
while True:
    step += 1
    w = torch.full((N,), float(step))
    save_state(run, step, {"w": w, "optimizer": {"m": -w}}, keep=2)
    save_export(run + "/export", {"w": w}, {"step": step})
    print(step, flush=True)
""".replace("N", str(N))
STALLED_WRITE = """
import sys, time
from fastdec.io import atomic_write
def write(tmp):
    with open(tmp, "wb") as f:
        f.write(b"half a state")
        f.flush()
        print("writing", flush=True)
        time.sleep(60)
atomic_write(sys.argv[1], write)
"""
LEFTOVER = r"\.(?:state-\d{8}\.pt|export|config\.json)\.[a-z0-9_]{8}\.tmp|\.export\.old"


def start(code: str, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE, text=True)


def quiet_load(directory):
    with warnings.catch_warnings():  # "restored the previous export": expected after some kills
        warnings.simplefilter("ignore")
        return load_export(directory)


def check_run(run: Path, newest_before: int) -> int:
    """Every state-*.pt loads with its own content, none older than the last good one is the newest,
    the export loads intact, and everything else in the directory is a hidden temporary (or backup)."""
    states = list_states(run)
    for path in states:
        state = load_state(path)
        assert torch.equal(state["w"], torch.full((N,), float(state["step"]))), path
        assert torch.equal(state["optimizer"]["m"], -state["w"]), path
    newest = latest_state(run)["step"]
    assert newest >= newest_before
    tensors, config = quiet_load(run / "export")
    assert torch.equal(tensors["w"], torch.full((N,), float(config["step"])))
    assert newest_before <= config["step"] <= newest + 1
    assert sorted(p.name for p in (run / "export").iterdir()) == ["config.json", "model.safetensors"]
    for path in run.iterdir():
        assert re.fullmatch(rf"state-\d{{8}}\.pt|export|{LEFTOVER}", path.name), path
    return newest


def test_kill_9_at_random_moments_leaves_the_last_good_state(tmp_path):
    rng = random.Random(0)
    w = torch.full((N,), 1.0)
    save_state(tmp_path, 1, {"w": w, "optimizer": {"m": -w}})
    save_export(tmp_path / "export", {"w": w}, {"step": 1})
    newest = 1
    for _ in range(2):
        writer = start(WRITER, tmp_path, newest)
        writer.stdout.readline()  # one full round written: the loop runs
        time.sleep(rng.uniform(0.0, 0.3))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        assert writer.returncode == -signal.SIGKILL
        newest = check_run(tmp_path, newest)
    w = torch.full((N,), float(newest + 1))
    save_state(tmp_path, newest + 1, {"w": w, "optimizer": {"m": -w}})
    save_export(tmp_path / "export", {"w": w}, {"step": newest + 1})
    assert sorted(p.name for p in tmp_path.iterdir() if re.fullmatch(LEFTOVER, p.name)) == []  # cleaned


def test_kill_9_in_the_middle_of_a_write(tmp_path):
    good = save_state(tmp_path, 5, {"w": torch.arange(10.0)})
    before = good.read_bytes()
    writer = start(STALLED_WRITE, good)  # rewrites state-00000005.pt, stalls half-way
    assert writer.stdout.readline() == "writing\n"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert good.read_bytes() == before  # the previous file is untouched
    leftovers = [p.name for p in tmp_path.iterdir() if p != good]
    assert len(leftovers) == 1 and re.fullmatch(r"\.state-00000005\.pt\..+\.tmp", leftovers[0])
    assert list_states(tmp_path) == [good]  # a temporary file is never taken for a state
    assert torch.equal(latest_state(tmp_path)["w"], torch.arange(10.0))
    save_state(tmp_path, 6, {"w": torch.zeros(1)})  # the next save removes the leftover
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state-00000005.pt", "state-00000006.pt"]


# Every call that creates, renames, deletes or syncs something on the way through a save.
FS_CALLS = ("open", "mkdir", "rename", "replace", "unlink", "rmdir", "fsync")


def killed_before_call(k: int, save) -> bool:
    """Run ``save()`` in a forked child that SIGKILLs itself just before its k-th file-system call;
    True if it was killed, False if the save finished in fewer calls."""
    pid = os.fork()
    if pid == 0:  # the child: no cleanup of any kind runs after the kill
        try:
            calls = [0]

            def hooked(fn):
                def call(*args, **kwargs):
                    if calls[0] == k:
                        os.kill(os.getpid(), signal.SIGKILL)
                    calls[0] += 1
                    return fn(*args, **kwargs)

                return call

            for name in FS_CALLS:
                setattr(os, name, hooked(getattr(os, name)))
            fastdec.io.save_safetensors = hooked(fastdec.io.save_safetensors)
            save()
        except BaseException:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True
    assert os.WEXITSTATUS(status) == 0, "the save failed in the child"
    return False


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def export_versions(tmp_path):
    """Byte images of three exports (old, new, next) of a small tokenizer-like weight set."""
    versions = []
    for i in range(3):
        tensors = {"w": torch.full((64, 3), float(i)), "b": torch.arange(5) + i}
        save_export(tmp_path / f"v{i}", tensors, {"version": i})
        versions.append((tensors, {"version": i}, snapshot(tmp_path / f"v{i}")))
    return versions


@pytest.mark.parametrize("previous", [True, False], ids=["overwrite", "first-write"])
def test_kill_9_before_every_file_operation_of_an_export(tmp_path, previous):
    """At every kill point the target holds the old export or the new one, byte for byte (or, for a
    first write, nothing); the next save succeeds and leaves no leftover."""
    (old, new, following), root = export_versions(tmp_path), tmp_path / "run"
    target = root / "export"
    outcomes = []
    for k in range(200):
        root.mkdir()
        if previous:
            save_export(target, old[0], old[1])
        if not killed_before_call(k, lambda: save_export(target, new[0], new[1])):
            break
        try:
            quiet_load(target)
            found = snapshot(target)
        except FileNotFoundError:
            assert not previous, f"the previous export was lost by a kill before call {k}"
            found = None
        assert found in ((old[2] if previous else None), new[2]), f"torn export after a kill before call {k}"
        outcomes.append("old" if found in (old[2], None) else "new")
        save_export(target, following[0], following[1])  # the next save is not disturbed
        assert [p.name for p in root.iterdir()] == ["export"] and snapshot(target) == following[2]
        for path in sorted(root.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        root.rmdir()
    else:
        pytest.fail("the save never finished")
    assert k >= 10 and outcomes[0] == "old" and outcomes[-1] == "new"  # both sides of the swap were hit


def test_kill_9_before_every_file_operation_of_a_state(tmp_path):
    old = {"w": torch.arange(100.0)}
    for k in range(100):
        save_state(tmp_path, 1, old)
        if not killed_before_call(k, lambda: save_state(tmp_path, 2, {"w": -torch.arange(100.0)}, keep=1)):
            break
        state = latest_state(tmp_path)
        assert torch.equal(state["w"], old["w"] if state["step"] == 1 else -old["w"]), k
        save_state(tmp_path, 3, old, keep=1)
        assert [p.name for p in tmp_path.iterdir()] == ["state-00000003.pt"]
        (tmp_path / "state-00000003.pt").unlink()
    else:
        pytest.fail("the save never finished")
    assert k >= 5


def test_load_restores_an_export_whose_overwrite_was_interrupted(tmp_path):
    """The window between the swap's two renames: the target is gone, the old export is the backup,
    the complete new one a temporary. Loading puts the old one back; the next save cleans up."""
    old, new = tiny_tokenizer(seed=0), tiny_tokenizer(seed=1)
    target = tmp_path / "model"
    old.save_pretrained(target)
    expected = snapshot(target)
    new.save_pretrained(tmp_path / "new")
    os.rename(target, fastdec.io.backup_path(target))
    os.rename(tmp_path / "new", tmp_path / ".model.abcd1234.tmp")
    with pytest.warns(UserWarning, match="restored the previous export"):
        loaded = Tokenizer.from_pretrained(target)
    assert snapshot(target) == expected
    assert all(torch.equal(v, old.state_dict()[k]) for k, v in loaded.state_dict().items())
    new.save_pretrained(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_stale_temporaries_are_removed_by_the_next_save_and_nothing_else(tmp_path):
    ours = [".state-00000004.pt.k3j_x9a2.tmp", ".export.0a1b2c3d.tmp", ".config.json.zzzzzzzz.tmp"]
    others = [
        ".state-00000004.pt.tmp",  # no random part
        "state-00000004.pt.k3j_x9a2.tmp",  # not hidden
        ".notes.k3j_x9a2.tmp",  # another target's name
        ".export.0a1b2c3d.tmp.keep",
        ".export.0A1B2C3D.tmp",  # not a tempfile name
        "export.old",
        "my.tmp",
    ]
    for name in ours + others:
        (tmp_path / name).write_text("x")
    (tmp_path / ".export.0a1b2c3e.tmp").mkdir()  # a killed export's directory
    (tmp_path / ".export.0a1b2c3e.tmp" / "model.safetensors").write_text("half")
    save_state(tmp_path, 5, {"w": torch.zeros(1)})
    save_export(tmp_path / "export", {"w": torch.zeros(1)}, {})
    fastdec.io.atomic_write_text(tmp_path / "config.json", "{}")
    expected = sorted(others + ["config.json", "export", "state-00000005.pt"])
    assert sorted(p.name for p in tmp_path.iterdir()) == expected
    assert all((tmp_path / name).read_text() == "x" for name in others)
