"""Exponential moving average of a model's floating-point parameters and buffers."""

import copy

import torch
from torch import nn


class EMA:
    """``ema <- beta * ema + (1 - beta) * model`` after every optimiser step.

    ``beta = min(decay, (1 + n) / (10 + n))`` after n updates: a warm-up, so that early in a short run
    the average is not mostly the random initialisation (0.999^500 = 0.61). A short run wants a
    short memory too: decay 0.999 averages about the last 1000 steps.
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        beta = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        for e, p in zip(self.model.state_dict().values(), model.state_dict().values(), strict=True):
            if e.is_floating_point():
                e.lerp_(p.detach(), 1.0 - beta)
            else:
                e.copy_(p)

    def state_dict(self):
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state):
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])
