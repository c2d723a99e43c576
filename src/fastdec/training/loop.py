"""The one training loop of fastdec: tokenizer training and distillation both run through it.

It counts optimiser steps, seeds every step from (seed, rank, step) so a resumed run draws exactly the
numbers an uninterrupted one would, writes training states atomically every ``ckpt_every`` steps and
resumes from the newest one when the same command runs again. What a step computes is the
``step_fn`` passed in; a step function with ``state_dict``/``load_state_dict`` (a discriminator and its
optimiser) is saved and restored with the rest.
"""

import contextlib
import json
import math
import signal
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from fastdec.io import atomic_write_text
from fastdec.training.ema import EMA
from fastdec.training.state import check_run_config, latest_state, save_state

StepFn = Callable[[nn.Module, torch.Tensor, torch.Generator], tuple[torch.Tensor, dict]]


def lr_at(step: int, *, lr: float, steps: int, warmup_steps: int, min_lr_ratio: float) -> float:
    """Linear warm-up, then cosine decay to ``lr * min_lr_ratio`` at ``steps``."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, steps - warmup_steps))
    return lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def batch_indices(step: int, batch_size: int, n: int, seed: int) -> list[int]:
    """Dataset indices of a step: epoch-wise permutations of range(n), a pure function of the step."""
    out = []
    for k in range(step * batch_size, (step + 1) * batch_size):
        epoch, pos = divmod(k, n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7919 + epoch))
        out.append(int(perm[pos]))
    return out


def step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + rank) * 10_000_019 + step)


@contextlib.contextmanager
def stop_signals():
    """Turn SIGTERM/SIGINT into a request the loop honours after the current step (state saved)."""
    received: list[int] = []
    previous = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda signum, frame: received.append(signum))
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def train_loop(
    *,
    run_dir: str | Path,
    model: nn.Module,
    step_fn: StepFn,
    dataset,
    config_json: str,
    steps: int,
    batch_size: int,
    lr: float,
    warmup_steps: int = 0,
    min_lr_ratio: float = 0.1,
    weight_decay: float = 0.0,
    beta2: float = 0.99,
    grad_clip: float = 1.0,
    ema_decay: float = 0.999,
    bf16: bool = False,
    seed: int = 0,
    log_every: int = 25,
    ckpt_every: int = 250,
    keep_states: int = 2,
    eval_fn: Callable[[nn.Module], dict] | None = None,
    eval_every: int = 0,
    export_fn: Callable[[nn.Module, int], None] | None = None,
    max_nonfinite: int = 10,
    progress: bool = True,
) -> EMA:
    """Train ``model`` for ``steps`` optimiser steps (resuming from ``run_dir`` if it holds a state).

    Only parameters with ``requires_grad`` are optimised. ``export_fn(ema_model, step)`` runs at the end.
    Returns the EMA.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    check_run_config(run_dir, config_json)
    atomic_write_text(run_dir / "config.json", config_json)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, beta2), weight_decay=weight_decay)
    ema = EMA(model, ema_decay)
    start = 0
    state = latest_state(run_dir)
    if state is not None:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        if hasattr(step_fn, "load_state_dict"):
            step_fn.load_state_dict(state["step_fn"])
        start = int(state["step"])

    def save(step):
        payload = {"model": model.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict()}
        if hasattr(step_fn, "state_dict"):  # e.g. a discriminator and its optimiser
            payload["step_fn"] = step_fn.state_dict()
        save_state(run_dir, step, {**payload, "seed": seed}, keep=keep_states)

    log = open(run_dir / "log.jsonl", "a")

    def write(record):
        log.write(json.dumps({**record, "time": time.time()}) + "\n")
        log.flush()

    bar = tqdm(total=steps, initial=start, disable=not progress, desc="train", unit="step")
    nonfinite, t_last, seen = 0, time.perf_counter(), 0
    model.train()
    with stop_signals() as stop:
        for step in range(start, steps):
            if stop:
                write({"step": step, "event": f"signal {stop[0]}"})
                save(step)
                break
            for group in opt.param_groups:
                group["lr"] = lr_at(
                    step, lr=lr, steps=steps, warmup_steps=warmup_steps, min_lr_ratio=min_lr_ratio
                )
            batch = torch.stack([dataset[i] for i in batch_indices(step, batch_size, len(dataset), seed)])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss, terms = step_fn(model, batch, step_generator(seed, 0, step))
            loss = loss.float().mean()
            if not torch.isfinite(loss):  # skip the update; stop after repeated failures
                nonfinite += 1
                write({"step": step, "event": "nonfinite_loss"})
                if nonfinite >= max_nonfinite:
                    raise RuntimeError(
                        f"loss was not finite {nonfinite} times (last at step {step}); "
                        f"the last good state is in {run_dir}"
                    )
                continue
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
            opt.step()
            ema.update(model)
            seen += batch.shape[0]
            bar.update(1)
            done = step + 1
            if done % log_every == 0 or done == steps:
                now = time.perf_counter()
                record = {
                    "step": done,
                    "loss": loss.item(),
                    **{k: v.float().mean().item() for k, v in terms.items()},
                    "grad_norm": grad_norm.item(),
                    "lr": opt.param_groups[0]["lr"],
                    "img_per_s": seen / (now - t_last),
                }
                t_last, seen = now, 0
                write(record)
                bar.set_postfix(loss=f"{record['loss']:.4f}", ips=f"{record['img_per_s']:.0f}")
            if eval_fn is not None and eval_every and (done % eval_every == 0 or done == steps):
                write({"step": done, "eval": eval_fn(ema.model)})
                t_last = time.perf_counter()
            if done % ckpt_every == 0 or done == steps:
                save(done)
    bar.close()
    log.close()
    if stop:
        raise SystemExit(f"stopped by signal {stop[0]}; the training state is saved in {run_dir}")
    if export_fn is not None:
        export_fn(ema.model, steps)
    return ema
