import pytest

from fastdec.config import Config
from fastdec.presets import PRESETS, resolve


def test_overrides_and_round_trip():
    c = resolve("cpu32", ["model.num_stages=3", "train.lr=1e-3", "sample.steps=4/2/1", "train.bf16=true"])
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


@pytest.mark.parametrize("side", [32, 64, 128])
def test_photos_presets_keep_the_latent_rate_and_build(side):
    import torch

    from fastdec.tokenizer import Tokenizer

    for name in (f"photos{side}-onepass", f"photos{side}"):
        m = PRESETS[name].model
        assert m.resolution == side and 24 * m.num_latents * m.latent_dim == 3 * side * side, name
        for stages in (1, 3) if name == f"photos{side}" else (1,):
            with torch.device("meta"):  # shapes only: no memory, no time
                Tokenizer(resolve(name, [f"model.num_stages={stages}"]))
