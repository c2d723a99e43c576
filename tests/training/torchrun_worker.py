"""Run by tests under torchrun: train the tiny tokenizer, save each rank's final weights, optionally
SIGKILL rank 1 at its N-th step (a process dying mid-run).

Usage: torchrun ... torchrun_worker.py RUN_DIR OUT_DIR KILL_AT_CALL [section.key=value ...]
(KILL_AT_CALL 0: never).
"""

import os
import signal
import sys

import torch

import fastdec.training.train as train_module
from fastdec.presets import resolve

run_dir, out_dir, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
rank = int(os.environ["RANK"])
real_loop, real_step = train_module.train_loop, train_module.TokenizerStep


def capturing_loop(**kwargs):
    ema = real_loop(**kwargs)
    weights = {"model": kwargs["model"].state_dict(), "ema": ema.model.state_dict()}
    torch.save(weights, os.path.join(out_dir, f"rank{rank}.pt"))
    return ema


class KilledStep(real_step):
    calls = 0

    def __call__(self, *args):
        KilledStep.calls += 1
        if rank == 1 and KilledStep.calls == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__call__(*args)


train_module.train_loop, train_module.TokenizerStep = capturing_loop, KilledStep
train_module.train_tokenizer(resolve("tiny", sys.argv[4:]), run_dir, progress=False)
