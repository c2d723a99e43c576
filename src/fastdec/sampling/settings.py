"""Decode settings: Euler steps per stage (or a total), guidance, temperature and seeds (docs/method.md §7).

One value, :class:`DecodeSettings`, checked once, when it is built; one text syntax for it, read by
:func:`parse_option` for the CLI's decode options, the settings of ``fastdec bench`` and the
``sample.steps`` config override. Steps per stage are separated by ``/`` (``4/2/1``; one number is
every stage's count), because a bench setting separates its options with ``,``
(``MODEL:steps=4/2/1,guidance=1.5``).

This module needs no torch, so that the CLI can parse its options before loading any.
"""

import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields

from fastdec.config import check_value


def integer(name: str, value) -> int:
    """``value`` as an int (ints and integer scalars such as numpy or 0-d tensor ints); floats and
    strings are a ValueError naming ``name``."""
    try:
        return operator.index(value)  # ints and integer scalars; floats and strings raise TypeError
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r:.80}") from None


def integers(name: str, values) -> tuple[int, ...]:
    """An int or an iterable of ints as a tuple; floats and strings are a ValueError naming ``name``."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        return (integer(name, values),)
    try:
        return tuple(integer(name, v) for v in values)
    except TypeError:  # e.g. iterating a 0-d tensor
        raise ValueError(f"{name} must be integers, got {values!r:.80}") from None


def parse_steps(text: str, name: str = "steps") -> tuple[int, ...]:
    """``"4"`` -> ``(4,)``, ``"4/2/1"`` -> ``(4, 2, 1)``: step counts, one per stage or one for all.

    Raises:
        ValueError: text that is not integers separated by ``/`` (e.g. the comma list ``4,2,1``),
            naming ``name``.
    """
    try:
        return tuple(int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(
            f"{name} expects integers separated by '/' (one per stage, e.g. 4/2/1, or one for every "
            f"stage), got {text!r:.80}"
        ) from None


def _number(key: str):
    def parse(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{key} expects a number, got {text!r:.80}") from None

    return parse


def _count(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"total_steps expects an integer, got {text!r:.80}") from None


_SYNTAX = {
    "steps": parse_steps,
    "total_steps": _count,
    "guidance": _number("guidance"),
    "temperature": _number("temperature"),
}
OPTIONS = tuple(_SYNTAX)  # the decode options that text can set (seeds come from a base seed)


def parse_option(key: str, text: str):
    """One decode option from text, checked: ``steps`` ``4`` or ``4/2/1``, ``total_steps`` ``12``,
    ``guidance`` ``1.5``, ``temperature`` ``0.7``.

    Raises:
        ValueError: an unknown option, or text or a value it does not take, naming the option.
    """
    if key not in _SYNTAX:
        raise ValueError(f"unknown decode option {key!r}; expected one of {', '.join(OPTIONS)}")
    return getattr(DecodeSettings(**{key: _SYNTAX[key](text)}), key)


@dataclass(frozen=True)
class DecodeSettings:
    """How to decode; None leaves a setting to the model's default (its config's ``sample`` section).

    Building one checks it (a ValueError names the setting): ``steps`` an int or one int per stage, each
    in [1, 10000]; ``total_steps`` (split over the stages instead) in [1, 10000], not with ``steps``;
    ``guidance`` (1 = off) and ``temperature`` (scale of every Gaussian draw; 0 = deterministic) finite
    in [0, 100]; ``seeds`` one int per image (image i's noise depends on ``seeds[i]`` only). Steps and
    seeds are stored as tuples, guidance and temperature as floats.
    """

    steps: tuple[int, ...] | None = None
    total_steps: int | None = None
    guidance: float | None = None
    temperature: float | None = None
    seeds: tuple[int, ...] | None = None

    def __post_init__(self):
        steps, total, seeds = self.steps, self.total_steps, self.seeds
        if steps is not None:
            steps = integers("steps", steps)
            if not steps or any(k < 1 for k in steps):
                raise ValueError(f"every stage needs at least one step, got steps {steps}")
            check_value("sample.steps", steps, name="steps")
        if total is not None:
            total = integer("total_steps", total)
            check_value("sample.steps", total, name="total_steps")
        if steps is not None and total is not None:
            raise ValueError(f"give steps ({steps}) or total_steps ({total}), not both")
        numbers = {}
        for key in ("guidance", "temperature"):
            value = getattr(self, key)
            if value is not None:
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    raise ValueError(f"{key} must be a number, got {value!r:.80}") from None
                check_value(f"sample.{key}", value, name=key)
            numbers[key] = value
        if seeds is not None:
            seeds = integers("seeds", seeds)
        for key, value in {"steps": steps, "total_steps": total, "seeds": seeds, **numbers}.items():
            object.__setattr__(self, key, value)

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> "DecodeSettings":
        """Settings from text options, e.g. ``{"steps": "4/2/1"}`` (see :func:`parse_option`)."""
        return cls(**{key: parse_option(key, text) for key, text in options.items()})

    def keywords(self) -> dict:
        """The settings that are set, as keywords of ``Tokenizer.decode`` (and of any codec's decode)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def resolve(self, defaults: "DecodeSettings", num_stages: int) -> "DecodeSettings":
        """These settings with ``defaults`` filled in and the steps as one count per stage: a total split
        as evenly as possible with the extra steps to the coarse stages, one count repeated for every
        stage. ``total_steps`` of the result is None.

        Raises:
            ValueError: a step count per stage for another number of stages, or a total below it.
        """
        if self.total_steps is not None:
            if self.total_steps < num_stages:
                raise ValueError(f"total steps {self.total_steps} is fewer than the {num_stages} stages")
            base, extra = divmod(self.total_steps, num_stages)
            steps = tuple(base + (1 if s < extra else 0) for s in range(num_stages))
        else:
            steps = self.steps if self.steps is not None else defaults.steps
            if len(steps) == 1:
                steps = steps * num_stages
            if len(steps) != num_stages:
                raise ValueError(f"got {len(steps)} step counts for {num_stages} stages: {steps}")
        return DecodeSettings(
            steps=steps,
            guidance=defaults.guidance if self.guidance is None else self.guidance,
            temperature=defaults.temperature if self.temperature is None else self.temperature,
            seeds=defaults.seeds if self.seeds is None else self.seeds,
        )
