"""The one training loop of fastdec: tokenizer training and distillation both run through it.

It counts optimiser steps; a step's global batch (:func:`batch_indices`) and every sample's random draws
(:class:`~fastdec.losses.draws.SampleDraws`) are pure functions of (seed, step, global index), so a
resumed run draws exactly the numbers an uninterrupted one would, and N processes under torchrun
(each takes its slice of the global batch, optionally in ``grad_accum`` micro-batches; DDP averages the
gradients) compute what one process computes. Rank 0 logs and writes training states atomically every
``ckpt_every`` steps; every rank resumes from the newest one when the same command runs again, with
any number of processes. Rank 0 holds the run directory's lock (:func:`run_lock`) for the whole run,
and a resumed run's ``log.jsonl`` keeps the records of the steps its state holds. What a step
computes is the ``step_fn`` passed in; a step function with ``state_dict``/``load_state_dict`` (a
discriminator and its optimiser) is saved and restored with the rest, and one with ``to(device)`` is
moved to the training device.
"""

import contextlib
import functools
import json
import math
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from fastdec.io import atomic_write_text, exclusive_lock, naming_write_errors
from fastdec.losses.draws import SampleDraws
from fastdec.training import distributed
from fastdec.training.ema import EMA
from fastdec.training.state import check_run_config, latest_state, load_state, save_state, state_path

LOG_NAME = "log.jsonl"
LOCK_NAME = ".lock"  # held by the running trainer, holding its pid (io.exclusive_lock)
StepFn = Callable[[nn.Module, torch.Tensor, SampleDraws], tuple[torch.Tensor, dict]]


def lr_at(step: int, *, lr: float, steps: int, warmup_steps: int, min_lr_ratio: float) -> float:
    """Linear warm-up, then cosine decay to ``lr * min_lr_ratio`` at ``steps``."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, steps - warmup_steps))
    return lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@functools.lru_cache(maxsize=4)
def _permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7919 + epoch))


def batch_indices(step: int, batch_size: int, n: int, seed: int) -> list[int]:
    """Dataset indices of a step: epoch-wise permutations of range(n), a pure function of the step."""
    return [
        int(_permutation(n, seed, k // n)[k % n]) for k in range(step * batch_size, (step + 1) * batch_size)
    ]


class StepSampler(Sampler[list[int]]):
    """The distributed sampler: this rank's micro-batches of dataset indices, step after step.

    A step's global batch (:func:`batch_indices`) is cut into ``world_size`` contiguous slices, rank r
    taking slice r, and each slice into ``grad_accum`` micro-batches of ``micro`` samples.
    """

    def __init__(self, *, start: int, steps: int, batch_size: int, n: int, seed: int, rank: int,
                 world_size: int, grad_accum: int):  # fmt: skip
        self.start, self.steps, self.batch_size, self.n, self.seed = start, steps, batch_size, n, seed
        self.local = batch_size // world_size
        self.micro = self.local // grad_accum
        self.rank, self.grad_accum = rank, grad_accum

    def positions(self, m: int) -> range:
        """Global positions in the step's batch of this rank's micro-batch ``m``."""
        first = self.rank * self.local + m * self.micro
        return range(first, first + self.micro)

    def __iter__(self):
        for step in range(self.start, self.steps):
            indices = batch_indices(step, self.batch_size, self.n, self.seed)
            for m in range(self.grad_accum):
                yield [indices[p] for p in self.positions(m)]

    def __len__(self) -> int:
        return (self.steps - self.start) * self.grad_accum


class _StepModule(nn.Module):
    """The model and its step function as one module, so that DDP sees the whole step as its forward."""

    def __init__(self, model: nn.Module, step_fn: StepFn):
        super().__init__()
        self.model = model
        self.step_fn = step_fn

    def forward(self, images: torch.Tensor, draws: SampleDraws):
        return self.step_fn(self.model, images, draws)


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


def run_lock(run_dir: Path):
    """The exclusive lock of a run directory: a second trainer is refused, naming the holder's pid."""
    return exclusive_lock(run_dir / LOCK_NAME, wait=False, what=f"run directory {run_dir}")


def open_log(path: Path, start: int):
    """``log.jsonl`` opened for appending, keeping only the records of the steps up to ``start`` (those
    the resumed state holds): the records of steps run after the last state, and a line torn by a
    kill, are dropped, so a resumed run logs each step once."""
    kept = []
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
                step = record["step"]
            except (json.JSONDecodeError, TypeError, KeyError):
                continue
            done = step + 1 if record.get("event") == "nonfinite_loss" else step  # logged by 0-based step
            if isinstance(done, int) and done <= start:
                kept.append(line + "\n")
    atomic_write_text(path, "".join(kept))
    with naming_write_errors(path):
        return open(path, "a")


def _check_split(batch_size: int, world_size: int, grad_accum: int) -> None:
    if grad_accum < 1:
        raise ValueError(f"train.grad_accum must be >= 1, got {grad_accum}")
    if batch_size % (world_size * grad_accum):
        raise ValueError(
            f"train.batch_size {batch_size} (the global batch) must be a multiple of processes x "
            f"grad_accum = {world_size} x {grad_accum}"
        )


def _accumulate_gradients(net, batches, sampler: StepSampler, ctx, *, seed: int, step: int, bf16: bool):
    """Forward and backward this rank's micro-batches of ``step``; DDP averages the gradients over the
    ranks in the last backward. Returns this rank's mean loss and mean terms (0-d tensors)."""
    micro_batches = sampler.grad_accum
    loss = torch.zeros((), device=ctx.device)
    terms: dict[str, torch.Tensor] = {}
    for m in range(micro_batches):
        batch = next(batches).to(ctx.device, non_blocking=True)  # (b, 3, R, R)
        draws = SampleDraws.for_step(seed, step, sampler.positions(m))
        last = m == micro_batches - 1
        with contextlib.nullcontext() if last or not ctx.distributed else net.no_sync():
            with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=bf16):
                micro_loss, micro_terms = net(batch, draws)
            micro_loss = micro_loss.float().mean() / micro_batches  # equal micro-batches: the batch mean
            micro_loss.backward()
        loss += micro_loss.detach()
        for k, v in micro_terms.items():
            terms[k] = terms.get(k, 0.0) + v.detach().float().mean() / micro_batches
    return loss, terms


def _mean_over_ranks(terms: dict[str, torch.Tensor], ctx) -> dict[str, float]:
    """Logged terms: each rank's means averaged over the ranks (equal local batches: the global mean)."""
    names = sorted(terms)
    if not names:
        return {}
    means = ctx.all_reduce(torch.stack([terms[k] for k in names])) / ctx.world_size
    return {k: v.item() for k, v in zip(names, means, strict=True)}


def _resume(run_dir: Path, ctx, model, ema, opt, step_fn, steps: int) -> int:
    """Load the newest state rank 0 sees on every rank; returns its step (0 for a fresh run)."""
    state = latest_state(run_dir) if ctx.is_main else None
    step = ctx.broadcast_int(-1 if state is None else int(state["step"]))
    if step < 0:
        return 0
    path = state_path(run_dir, step)
    if state is None:
        if not path.is_file():
            raise FileNotFoundError(
                f"rank {ctx.rank} cannot see {path}: the run directory must be on a file system "
                "that every node shares"
            )
        state = load_state(path)
    if not 0 <= step <= steps:
        raise ValueError(f"{path} holds step {step}, outside this run's 0..{steps} (train.steps)")
    try:  # a readable state can still be wrong: missing entries, other shapes, foreign optimiser
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        _check_optimizer(opt)
        if hasattr(step_fn, "load_state_dict"):
            step_fn.load_state_dict(state.get("step_fn", {}))  # none: a state saved before it had one
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as err:
        reason = " ".join(str(err).split())  # torch's messages span lines
        raise ValueError(f"{path} does not fit this run: {type(err).__name__}: {reason:.300}") from None
    return step


def _check_optimizer(opt: torch.optim.Optimizer) -> None:
    """Refuse optimiser moments whose shapes are not their parameters' (``load_state_dict`` does not)."""
    for group in opt.param_groups:
        for param in group["params"]:
            for name, value in opt.state.get(param, {}).items():
                if torch.is_tensor(value) and value.ndim and value.shape != param.shape:
                    raise ValueError(
                        f"optimizer entry {name!r} has shape {tuple(value.shape)}, its parameter "
                        f"{tuple(param.shape)}"
                    )


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
    grad_accum: int = 1,
    workers: int = 0,
    device: str = "auto",
    compile_modules: Sequence[nn.Module] = (),
    log_every: int = 25,
    ckpt_every: int = 250,
    keep_states: int = 2,
    eval_fn: Callable[[nn.Module], dict] | None = None,
    eval_every: int = 0,
    export_fn: Callable[[nn.Module, int], None] | None = None,
    max_nonfinite: int = 10,
    max_minutes: float = 0.0,
    stop_at: int = 0,
    progress: bool = True,
) -> EMA:
    """Train ``model`` for ``steps`` optimiser steps (resuming from ``run_dir`` if it holds a state).

    ``batch_size`` is the global batch of a step, over all processes and micro-batches. Only
    parameters with ``requires_grad`` are optimised. ``compile_modules`` (submodules of ``model``) are
    compiled in place with ``torch.compile`` once the EMA copy exists. ``workers``: DataLoader worker
    processes per rank. ``export_fn(ema_model, step)`` runs on rank 0 at the end, also when the loop
    stops early at ``max_minutes`` (> 0) of wall clock: after the step that crosses it, with a state
    saved, so the same command trains on. ``stop_at`` (> 0) ends the run after that step, state saved
    and exported, with the learning-rate schedule still that of ``steps``. Returns the EMA.
    """
    ctx = distributed.setup(device)
    _check_split(batch_size, ctx.world_size, grad_accum)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir) if ctx.is_main else contextlib.nullcontext():  # one trainer per run directory
        check_run_config(run_dir, config_json)
        if ctx.is_main:
            atomic_write_text(run_dir / "config.json", config_json)
        model.to(ctx.device)
        if hasattr(step_fn, "to"):
            step_fn.to(ctx.device)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, beta2), weight_decay=weight_decay)
        ema = EMA(model, ema_decay)
        start = _resume(run_dir, ctx, model, ema, opt, step_fn, steps)
        for module in compile_modules:
            module.compile()
        net = ctx.wrap(_StepModule(model, step_fn))

        def save(step):
            payload = {"model": model.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict()}
            if hasattr(step_fn, "state_dict"):  # e.g. a discriminator and its optimiser
                payload["step_fn"] = step_fn.state_dict()
            if ctx.is_main:
                save_state(run_dir, step, {**payload, "seed": seed}, keep=keep_states)
            ctx.barrier()  # no rank runs ahead of (or exits before) a state being written

        log_path = run_dir / LOG_NAME
        log = open_log(log_path, start) if ctx.is_main else None

        def write(record):
            if log is not None:
                with naming_write_errors(log_path):
                    log.write(json.dumps({**record, "time": time.time()}) + "\n")
                    log.flush()

        sampler = StepSampler(start=start, steps=steps, batch_size=batch_size, n=len(dataset), seed=seed,
                              rank=ctx.rank, world_size=ctx.world_size, grad_accum=grad_accum)  # fmt: skip
        batches = iter(DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                                  pin_memory=ctx.device.type == "cuda"))  # fmt: skip
        bar = tqdm(
            total=steps, initial=start, disable=not (progress and ctx.is_main), desc="train", unit="step"
        )
        nonfinite, t_last, seen, stopped, saved, done = 0, time.perf_counter(), 0, False, start, start
        deadline = t_last + 60 * max_minutes if max_minutes else math.inf
        model.train()
        last = min(steps, stop_at) if stop_at else steps
        with stop_signals() as stop:
            for step in range(start, last):
                for group in opt.param_groups:
                    group["lr"] = lr_at(
                        step, lr=lr, steps=steps, warmup_steps=warmup_steps, min_lr_ratio=min_lr_ratio
                    )
                opt.zero_grad(set_to_none=True)
                loss, terms = _accumulate_gradients(
                    net, batches, sampler, ctx, seed=seed, step=step, bf16=bf16
                )
                flags = [float(bool(stop)), float(time.perf_counter() >= deadline)]
                shared = ctx.all_reduce(torch.cat([loss[None], torch.tensor(flags, device=ctx.device)]))
                loss = shared[0] / ctx.world_size
                stopped, out_of_time = bool(shared[1] > 0), bool(shared[2] > 0)  # every rank stops together
                signame = stop[0] if stop else "(received by another rank)"
                done = step + 1
                if not torch.isfinite(
                    loss
                ):  # skip the update (all ranks agree); stop after repeated failures
                    nonfinite += 1
                    write({"step": step, "event": "nonfinite_loss"})
                    if nonfinite >= max_nonfinite:
                        raise RuntimeError(
                            f"loss was not finite {nonfinite} times (last at step {step}); "
                            f"the last good state is in {run_dir}"
                        )
                else:
                    grad_norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
                    opt.step()
                    ema.update(model)
                    seen += batch_size
                    bar.update(1)
                    if done % log_every == 0 or done == last or out_of_time:
                        now = time.perf_counter()
                        record = {
                            "step": done,
                            "loss": loss.item(),
                            **_mean_over_ranks(terms, ctx),
                            "grad_norm": grad_norm.item(),
                            "lr": opt.param_groups[0]["lr"],
                            "img_per_s": seen / (now - t_last),
                        }
                        t_last, seen = now, 0
                        write(record)
                        bar.set_postfix(loss=f"{record['loss']:.4f}", ips=f"{record['img_per_s']:.0f}")
                    if (
                        ctx.is_main
                        and eval_fn is not None
                        and eval_every
                        and (done % eval_every == 0 or done == last or out_of_time)
                    ):
                        write({"step": done, "eval": eval_fn(ema.model)})
                        t_last = time.perf_counter()
                    if done % ckpt_every == 0 or done == last:
                        save(done)
                        saved = done
                if stopped or out_of_time:
                    event = f"signal {signame}" if stopped else f"max_minutes {max_minutes}"
                    write({"step": done, "event": event})
                    if saved != done:
                        save(done)
                    break
        bar.close()
        if log is not None:
            log.close()
        if stopped:
            distributed.teardown(ctx)
            raise SystemExit(f"stopped by signal {signame}; the training state is saved in {run_dir}")
        if export_fn is not None and ctx.is_main:
            export_fn(ema.model, done)
        distributed.teardown(ctx)
        return ema
