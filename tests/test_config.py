import pytest

from fastdec.config import PRESETS, Config, resolve


def test_overrides_and_round_trip():
    c = resolve("cpu32", ["model.num_stages=3", "train.lr=1e-3", "sample.steps=4,2,1", "train.bf16=true"])
    assert c.model.num_stages == 3 and c.train.lr == 1e-3 and c.sample.steps == (4, 2, 1)
    assert c.train.bf16 is True
    assert Config.from_dict(c.to_dict()) == c
    for name in PRESETS:
        assert Config.from_dict(PRESETS[name].to_dict()) == PRESETS[name]


@pytest.mark.parametrize(
    "bad", ["model.nope=1", "model.num_stages", "x.y=1", "train.bf16=maybe", "model.num_stages=two"]
)
def test_bad_overrides_are_named(bad):
    with pytest.raises(ValueError):
        resolve("cpu32", [bad])


def test_unknown_preset_and_keys():
    with pytest.raises(ValueError, match="unknown preset"):
        resolve("nope")
    with pytest.raises(ValueError, match="unknown model config keys"):
        Config.from_dict({"model": {"wat": 1}})
