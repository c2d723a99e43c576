"""Exponential moving average of a model's floating-point parameters and buffers."""

import copy

import torch
from torch import nn


class EMA:
    """``ema <- decay * ema + (1 - decay) * model`` after every optimiser step.

    A short run wants a short memory: decay 0.999 averages about the last 1000 steps.
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for e, p in zip(self.model.state_dict().values(), model.state_dict().values(), strict=True):
            if e.is_floating_point():
                e.lerp_(p.detach(), 1.0 - self.decay)
            else:
                e.copy_(p)

    def state_dict(self):
        return self.model.state_dict()

    def load_state_dict(self, state):
        self.model.load_state_dict(state)
