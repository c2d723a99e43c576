"""Decode settings: one syntax (steps per stage separated by '/'), one value, checked once."""

import math

import pytest

from fastdec.eval.bench import parse_setting
from fastdec.presets import resolve
from fastdec.sampling.settings import DecodeSettings, integers, parse_option, parse_steps


def test_options_parse_to_checked_values():
    assert parse_option("steps", "4") == (4,)
    assert parse_option("steps", "4/2/1") == (4, 2, 1)
    assert parse_option("total_steps", "12") == 12
    assert parse_option("guidance", "1.5") == 1.5
    assert parse_option("temperature", "0") == 0.0 and isinstance(parse_option("temperature", "0"), float)
    assert DecodeSettings.parse({"steps": "3/1", "guidance": "2"}) == DecodeSettings(
        steps=(3, 1), guidance=2.0
    )


@pytest.mark.parametrize(
    ("key", "text", "message"),
    [
        ("steps", "4,2,1", r"steps expects integers separated by '/' .* got '4,2,1'"),
        ("steps", "2.5", "steps expects integers separated by '/'"),
        ("steps", "4/", "steps expects integers separated by '/'"),
        ("steps", "0", r"every stage needs at least one step, got steps \(0,\)"),
        ("steps", "4/-1", r"every stage needs at least one step, got steps \(4, -1\)"),
        ("steps", "10001", r"steps must be <= 10000, got \(10001,\)"),
        ("total_steps", "x", "total_steps expects an integer, got 'x'"),
        ("total_steps", "0", "total_steps must be >= 1, got 0"),
        ("guidance", "abc", "guidance expects a number, got 'abc'"),
        ("guidance", "nan", "guidance must be finite"),
        ("guidance", "1e308", "guidance must be <= 100"),
        ("temperature", "-0.5", "temperature must be >= 0, got -0.5"),
        ("seeds", "1", "unknown decode option 'seeds'"),
    ],
)
def test_bad_options_are_a_value_error_naming_the_option(key, text, message):
    with pytest.raises(ValueError, match=message):
        parse_option(key, text)


def test_settings_are_normalised_and_checked_when_built():
    s = DecodeSettings(steps=4, guidance=2, temperature=1, seeds=range(3))
    assert (s.steps, s.guidance, s.temperature, s.seeds) == ((4,), 2.0, 1.0, (0, 1, 2))
    assert isinstance(s.guidance, float) and isinstance(s.temperature, float)
    assert s.keywords() == {"steps": (4,), "guidance": 2.0, "temperature": 1.0, "seeds": (0, 1, 2)}
    assert DecodeSettings().keywords() == {}
    bad = {
        "not both": ({"steps": 2, "total_steps": 4}, r"give steps \(\(2,\)\) or total_steps \(4\), not both"),
        "text steps": ({"steps": "4"}, "steps must be an integer, got '4'"),
        "float steps": ({"steps": (2, 1.5)}, "steps must be an integer, got 1.5"),
        "no steps": ({"steps": ()}, "every stage needs at least one step"),
        "float total": ({"total_steps": 4.0}, "total_steps must be an integer"),
        "inf guidance": ({"guidance": math.inf}, "guidance must be finite"),
        "text guidance": ({"guidance": "x"}, "guidance must be a number, got 'x'"),
        "float seeds": ({"seeds": [0, 0.5]}, "seeds must be an integer, got 0.5"),
    }
    for kwargs, message in bad.values():
        with pytest.raises(ValueError, match=message):
            DecodeSettings(**kwargs)


def test_resolve_fills_defaults_and_gives_one_count_per_stage():
    defaults = DecodeSettings(steps=(50,), guidance=1.0, temperature=0.7)
    assert DecodeSettings().resolve(defaults, 3) == DecodeSettings(steps=(50, 50, 50), guidance=1.0,
                                                                   temperature=0.7)  # fmt: skip
    assert DecodeSettings(steps=(4, 2, 1)).resolve(defaults, 3).steps == (4, 2, 1)
    assert DecodeSettings(total_steps=10).resolve(defaults, 3).steps == (4, 3, 3)  # extra steps: coarse
    assert sum(DecodeSettings(total_steps=50).resolve(defaults, 4).steps) == 50
    resolved = DecodeSettings(guidance=1.5, temperature=0.0, seeds=[7]).resolve(defaults, 1)
    assert (resolved.guidance, resolved.temperature, resolved.seeds, resolved.total_steps) == (
        1.5,
        0.0,
        (7,),
        None,
    )
    with pytest.raises(ValueError, match="got 2 step counts for 3 stages"):
        DecodeSettings(steps=(1, 2)).resolve(defaults, 3)
    with pytest.raises(ValueError, match="total steps 2 is fewer than the 3 stages"):
        DecodeSettings(total_steps=2).resolve(defaults, 3)


def test_one_syntax_everywhere():
    """The CLI option, a bench setting and the config override read steps alike, and refuse the comma
    list alike, naming what they parse."""
    from fastdec.cli.common import decode_settings
    from fastdec.cli.main import build_parser

    args = build_parser().parse_args(["eval", "--model", "m", "--steps", "4/2/1", "--guidance", "1.5"])
    assert decode_settings(args) == {"steps": (4, 2, 1), "guidance": 1.5}
    assert parse_setting("m:steps=4/2/1,guidance=1.5").decode == {"steps": (4, 2, 1), "guidance": 1.5}
    assert resolve("tiny", ["model.num_stages=3", "sample.steps=4/2/1"]).sample.steps == (4, 2, 1)
    assert parse_steps("4/2/1") == (4, 2, 1)
    with pytest.raises(ValueError, match=r"steps expects integers separated by '/'.*in setting 'm:steps=4"):
        parse_setting("m:steps=4/2/1x")
    with pytest.raises(ValueError, match="sample.steps expects integers separated by '/'"):
        resolve("tiny", ["sample.steps=4,2"])
    with pytest.raises(ValueError, match="steps expects integers separated by '/'"):
        decode_settings(build_parser().parse_args(["eval", "--model", "m", "--steps", "4,2,1"]))


def test_integers():
    assert integers("seeds", 3) == (3,) and integers("seeds", range(2)) == (0, 1)
    for bad in ("3", 2.0, [1, "2"], [True, 1.5]):
        with pytest.raises(ValueError, match="seeds must be an integer"):
            integers("seeds", bad)
