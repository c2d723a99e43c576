import pytest
import torch

import fastdec
from fastdec.autoencoder import FlowAutoencoder, decode_batches, encode_batches
from fastdec.presets import resolve
from fastdec.tokenizer import Tokenizer
from tests.conftest import images, tiny_tokenizer

GRID = ("model.latent_kind=grid", "model.num_latents=16")
VQ = ("model.bottleneck=vq", "model.codebook_size=16")


def test_package_exports():
    assert fastdec.FlowAutoencoder is FlowAutoencoder and fastdec.Tokenizer is Tokenizer
    with pytest.raises(AttributeError):
        fastdec.NoSuchThing  # noqa: B018


@pytest.mark.parametrize(
    ("overrides", "shape"), [((), (4, 4)), (GRID, (4, 4, 4)), (VQ, (4, 4))], ids=["tokens", "grid", "vq"]
)
def test_encode_decode_in_the_diffusers_shape(overrides, shape):
    tok = tiny_tokenizer(*overrides)
    ae = FlowAutoencoder(tok)
    x = images(3)
    out = ae.encode(x)
    assert ae.config.latent_shape == shape and out.latents.shape == (3, *shape)
    assert torch.equal(out.latent_dist.mode(), out.latents)
    assert torch.equal(out.latent_dist.sample(torch.Generator().manual_seed(0)), out.latents)  # point mass
    assert (out.indices is not None) == (ae.config.bottleneck == "vq")
    decoded = ae.decode(out.latent_dist.sample(), steps=2, seeds=[5, 6, 7]).sample
    # the same numbers as the tokenizer in its own (B, L, d) layout
    assert torch.equal(ae.config.to_tokens(out.latents), tok.encode(x))
    assert torch.equal(decoded, tok.decode(tok.encode(x), steps=2, seeds=[5, 6, 7]))
    assert decoded.shape == (3, 3, 16, 16)


def test_vq_indices_decode_like_latents():
    ae = FlowAutoencoder(tiny_tokenizer(*VQ))
    out = ae.encode(images(2))
    assert torch.allclose(
        ae.decode_indices(out.indices, steps=2).sample, ae.decode(out.latents, steps=2).sample
    )
    with pytest.raises(ValueError, match="VQ tokenizer"):
        FlowAutoencoder(tiny_tokenizer()).decode_indices(out.indices)


def test_grid_latents_are_channels_first_images_of_the_regions():
    """With the PCA skip alone (zero-initialised transformer head) latent (:, i, j) sees region (i, j)."""
    torch.manual_seed(0)
    tok = Tokenizer(resolve("tiny", [*GRID, "model.latent_skip=true", "model.parameterization=x"])).eval()
    tok.init_linear_skip(images(64, seed=1))
    ae = FlowAutoencoder(tok)
    x = images(1)
    y = x.clone()
    y[:, :, 0:4, 12:16] = -x[:, :, 0:4, 12:16]  # region at row 0, column 3 of the 4x4 grid
    changed = (ae.encode(y).latents - ae.encode(x).latents).abs().amax(dim=1)[0]  # (h, w)
    assert changed[0, 3] > 0
    changed[0, 3] = 0
    assert changed.max() < 1e-5


def test_contract_mismatch_names_the_shapes():
    ae = FlowAutoencoder(tiny_tokenizer())
    with pytest.raises(
        ValueError, match=r"latents of shape \(2, 16, 4\) do not match .* \(L, d\) = \(4, 4\)"
    ):
        ae.decode(torch.zeros(2, 16, 4))
    grid = FlowAutoencoder(tiny_tokenizer(*GRID))
    with pytest.raises(ValueError, match=r"\(d, h, w\) = \(4, 4, 4\)"):
        grid.decode(torch.zeros(2, 16, 4))  # the tokenizer layout is not the public one
    with pytest.raises(ValueError, match="NaN"):
        ae.decode(torch.full((1, 4, 4), float("nan")))
    with pytest.raises(ValueError, match="float"):
        ae.decode(torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="Tokenizer"):
        FlowAutoencoder(torch.nn.Linear(2, 2))


def test_save_and_load_round_trip_keeps_contract_and_outputs(tmp_path):
    ae = FlowAutoencoder(tiny_tokenizer(*GRID))
    scale, shift = ae.fit_latent_scaling(images(8))
    z = ae.encode(images(8)).latents
    assert (z - shift).mul(scale).std().item() == pytest.approx(1.0, rel=1e-4)
    assert (z - shift).mean().abs().item() < 1e-5
    assert ae.config.scaling_factor == scale and ae.config.shift_factor == shift
    ae.save_pretrained(tmp_path / "ae")
    loaded = FlowAutoencoder.from_pretrained(tmp_path / "ae")
    assert loaded.config == ae.config
    z = loaded.encode(images(2)).latents
    assert torch.equal(loaded.decode(z, steps=2).sample, ae.decode(z, steps=2).sample)


def test_batch_helpers_match_one_call_and_are_batch_independent():
    ae = FlowAutoencoder(tiny_tokenizer(*VQ))
    x = images(5)
    tokens = encode_batches(ae, x, indices=True, batch_size=2)
    assert torch.equal(tokens, ae.encode(x).indices)
    latents = encode_batches(ae, x, batch_size=5)
    whole = ae.decode(latents, steps=2, seeds=range(3, 8)).sample
    split = decode_batches(ae, latents, batch_size=2, seed=3, steps=2)
    assert torch.allclose(split, whole, atol=1e-5)
    from_tokens = decode_batches(ae, tokens, indices=True, batch_size=5, seed=3, steps=2)
    assert torch.allclose(from_tokens, whole, atol=1e-5)
    with pytest.raises(ValueError, match="VQ tokenizer"):
        encode_batches(FlowAutoencoder(tiny_tokenizer()), x, indices=True)
