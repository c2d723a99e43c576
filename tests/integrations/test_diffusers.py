import pytest
import torch

pytest.importorskip("diffusers")

from diffusers import DDIMScheduler, DiTPipeline, DiTTransformer2DModel  # noqa: E402
from diffusers.models.autoencoders.vae import DecoderOutput  # noqa: E402
from diffusers.models.modeling_outputs import AutoencoderKLOutput  # noqa: E402

from fastdec.autoencoder import FlowAutoencoder  # noqa: E402
from fastdec.integrations.diffusers import FastdecVAE  # noqa: E402
from tests.conftest import images, tiny_tokenizer  # noqa: E402

GRID = ("model.latent_kind=grid", "model.num_latents=16")  # latents (B, 4, 4, 4): a diffusers image latent


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    path = tmp_path_factory.mktemp("export")
    tok = tiny_tokenizer(*GRID)
    FlowAutoencoder(tok).fit_latent_scaling(images(8))
    tok.save_pretrained(path)
    return path


def test_vae_interface_matches_the_fastdec_decoder(export):
    vae = FastdecVAE.from_fastdec(export)
    ae = FlowAutoencoder.from_pretrained(export)
    assert vae.config.scaling_factor == ae.config.scaling_factor != 1.0
    assert vae.config.shift_factor == ae.config.shift_factor
    x = images(2)
    with torch.no_grad():
        enc = vae.encode(x)
        assert isinstance(enc, AutoencoderKLOutput)
        z = enc.latent_dist.sample(torch.Generator().manual_seed(0))  # zero variance: the mode
        assert torch.equal(z, enc.latent_dist.mode()) and torch.equal(z, ae.encode(x).latents)
        scaled = z * vae.config.scaling_factor  # what a pipeline stores
        dec = vae.decode(scaled / vae.config.scaling_factor, steps=2)
        assert isinstance(dec, DecoderOutput)
        assert torch.allclose(dec.sample, ae.decode(z, steps=2).sample, atol=1e-6)
        (plain,) = vae.decode(z, return_dict=False, steps=2)
        assert torch.allclose(plain, dec.sample, atol=1e-6)  # z * s / s is z up to rounding
        a = vae.decode(z, generator=torch.Generator().manual_seed(3), steps=2).sample
        b = vae.decode(z, generator=torch.Generator().manual_seed(3), steps=2).sample
        assert torch.equal(a, b) and not torch.equal(a, dec.sample)  # generator -> per-image seeds


def test_dit_pipeline_decodes_through_the_adapter(export, tmp_path):
    vae = FastdecVAE.from_fastdec(export)
    transformer = DiTTransformer2DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=1,
        sample_size=4, patch_size=2, num_embeds_ada_norm=1000,
    ).eval()  # fmt: skip
    pipe = DiTPipeline(transformer=transformer, vae=vae, scheduler=DDIMScheduler())
    pipe.set_progress_bar_config(disable=True)
    out = pipe(class_labels=[1, 2], num_inference_steps=2, guidance_scale=1.0, output_type="pt",
               generator=torch.manual_seed(0)).images  # fmt: skip
    assert out.shape == (2, 3, 16, 16) and torch.isfinite(out).all()
    vae.save_pretrained(tmp_path / "vae")  # diffusers' own format round trip
    loaded = FastdecVAE.from_pretrained(tmp_path / "vae")
    assert loaded.config.scaling_factor == vae.config.scaling_factor
    z = torch.randn(1, 4, 4, 4)
    with torch.no_grad():
        # equal weights; diffusers' loader may lay them out differently in memory: a last-bit difference
        assert torch.allclose(loaded.decode(z, steps=2).sample, vae.decode(z, steps=2).sample, atol=1e-6)


def test_bad_latents_keep_fastdec_errors(export):
    vae = FastdecVAE.from_fastdec(export)
    with pytest.raises(ValueError, match=r"\(d, h, w\) = \(4, 4, 4\)"):
        vae.decode(torch.zeros(1, 16, 4))
