"""kill -9 while checkpoints and exports are written: the previous good files survive, intact."""

import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from fastdec.io import load_export, save_export
from fastdec.training.state import latest_state, list_states, load_state, save_state

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


def start(code: str, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE, text=True)


def check_run(run: Path, newest_before: int) -> int:
    """Every state-*.pt loads with its own content, none older than the last good one is the newest,
    and everything else in the directory is the export or a hidden temporary file."""
    states = list_states(run)
    for path in states:
        state = load_state(path)
        assert torch.equal(state["w"], torch.full((N,), float(state["step"]))), path
        assert torch.equal(state["optimizer"]["m"], -state["w"]), path
    newest = latest_state(run)["step"]
    assert newest >= newest_before
    try:
        tensors, config = load_export(run / "export")
        assert torch.equal(tensors["w"], torch.full((N,), float(config["step"])))
    except ValueError as err:  # only a kill between the export's two back-to-back renames lands here
        assert "interrupted export" in str(err)
    for path in [*run.iterdir(), *(run / "export").iterdir()]:
        assert re.fullmatch(r"state-\d{8}\.pt|export|config\.json|model\.safetensors|\..+\.tmp", path.name)
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
    save_state(tmp_path, 6, {"w": torch.zeros(1)})  # the next save is not disturbed by the leftover
    assert [p.name for p in list_states(tmp_path)] == ["state-00000005.pt", "state-00000006.pt"]
