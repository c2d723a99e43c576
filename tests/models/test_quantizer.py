import json
import math

import pytest
import torch
import torch.nn.functional as F

from fastdec.losses.flow_matching import FlowMatchingLoss
from fastdec.models.quantizer import VectorQuantizer, code_statistics
from fastdec.presets import resolve
from fastdec.tokenizer import Tokenizer
from fastdec.training.steps import TokenizerStep
from tests.conftest import images, tiny_tokenizer

VQ = ("model.bottleneck=vq", "model.codebook_size=16")


def test_statistics_of_constructed_histograms():
    one = code_statistics(torch.full((4, 8), 3), 16)  # every vector on one code
    assert one["perplexity"].item() == pytest.approx(1.0)
    assert one["codebook_usage"].item() == pytest.approx(1 / 16)
    all_codes = code_statistics(torch.arange(16).repeat(3), 16)  # uniform over the codebook
    assert all_codes["perplexity"].item() == pytest.approx(16.0)
    assert all_codes["codebook_usage"].item() == pytest.approx(1.0)
    two = code_statistics(torch.tensor([[0, 5, 0, 5]]), 16)  # two codes, half each
    assert two["perplexity"].item() == pytest.approx(2.0)
    skewed = code_statistics(torch.tensor([0, 0, 0, 1]), 4)  # H = -(3/4 ln 3/4 + 1/4 ln 1/4)
    assert skewed["perplexity"].item() == pytest.approx(
        math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    )


def test_nearest_code_by_cosine_and_zero_loss_on_a_code():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 4)
    codes = vq.codes()
    pick = torch.tensor([[2, 7, 2], [0, 1, 5]])
    z = codes[pick] * torch.tensor([0.5, 3.0, 10.0])[None, :, None]  # scale does not change the code
    out = vq(z)
    assert torch.equal(out.indices, pick)
    assert torch.allclose(out.latents, codes[pick], atol=1e-6)
    assert torch.allclose(out.loss, torch.zeros(2), atol=1e-10)
    assert out.terms["codebook_usage"].item() == pytest.approx(5 / 8)
    torch.manual_seed(1)
    z = torch.randn(1, 50, 4)
    brute = torch.stack([(F.normalize(v, dim=0) @ codes.T).argmax() for v in z[0]])
    assert torch.equal(vq(z).indices[0], brute)


def test_loss_values_and_straight_through_gradient():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 4, beta=0.25)
    z = torch.randn(2, 3, 4, requires_grad=True)
    out = vq(z)
    z_n = F.normalize(z.detach(), dim=-1)
    d = (out.latents.detach() - z_n).pow(2).mean((1, 2))
    assert torch.allclose(out.loss, 1.25 * d)  # codebook + beta * commitment, equal in value
    assert out.terms["vq_loss"].item() == pytest.approx(out.loss.mean().item())
    w = torch.randn(2, 3, 4)
    (out.latents * w).sum().backward()  # straight-through: d latents / d z_n is the identity
    z_ref = z.detach().clone().requires_grad_(True)
    (F.normalize(z_ref, dim=-1) * w).sum().backward()
    assert torch.allclose(z.grad, z_ref.grad, atol=1e-6)


def test_codebook_learns_only_from_the_loss():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 4)
    out = vq(torch.randn(2, 3, 4, requires_grad=True))
    out.latents.sum().backward()  # the straight-through path carries no gradient to the codes
    assert vq.codebook.grad is None
    out = vq(torch.randn(2, 3, 4))
    out.loss.sum().backward()
    assert vq.codebook.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "bad",
    [dict(codebook_size=1, dim=4), dict(codebook_size=8, dim=1), dict(codebook_size=8, dim=4, beta=-1.0)],
)
def test_bad_quantizer_settings(bad):
    with pytest.raises(ValueError):
        VectorQuantizer(**bad)


def test_vq_training_step_reaches_encoder_and_codebook_and_logs_terms():
    model = tiny_tokenizer(*VQ).train()
    step = TokenizerStep(FlowMatchingLoss(model.pyramid), cfg_dropout=0.5)
    loss, terms = step(model, images(8), torch.Generator().manual_seed(1))
    assert loss.shape == (8,)
    assert {"vq_loss", "codebook_usage", "perplexity"} <= set(terms)
    assert 1.0 <= terms["perplexity"].item() <= 16 and 0 < terms["codebook_usage"].item() <= 1
    loss.mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing
    assert model.encoder.quantizer.codebook.grad.abs().sum() > 0


def test_continuous_training_step_is_unchanged_by_the_hook():
    model = tiny_tokenizer()
    step = TokenizerStep(FlowMatchingLoss(model.pyramid), cfg_dropout=0.5)
    loss, terms = step(model, images(4), torch.Generator().manual_seed(1))
    assert "vq_loss" not in terms
    z = model.encoder(images(4))
    assert torch.equal(z, model.encoder.features(images(4)))


def test_tokens_round_trip_through_the_tokenizer(tmp_path):
    model = tiny_tokenizer(*VQ)
    x = images(3)
    tokens = model.encode_indices(x)
    assert tokens.shape == (3, 4) and tokens.dtype == torch.int64
    assert tokens.min() >= 0 and tokens.max() < 16
    assert torch.allclose(model.latents_from_indices(tokens), model.encode(x), atol=1e-6)
    out = model.decode_indices(tokens, steps=2)
    assert torch.allclose(out, model.decode(model.encode(x), steps=2), atol=1e-5)
    model.save_pretrained(tmp_path / "vq")
    loaded = Tokenizer.from_pretrained(tmp_path / "vq")
    assert loaded.config.model.bottleneck == "vq"
    assert torch.equal(loaded.encode_indices(x), tokens)


def test_bad_token_indices_are_named():
    model = tiny_tokenizer(*VQ)
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        model.latents_from_indices(torch.tensor([[0, 1, 2, 16]]))
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        model.latents_from_indices(torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        model.latents_from_indices(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="VQ tokenizer"):
        tiny_tokenizer().encode_indices(images(2))


def test_vq_config_validation():
    with pytest.raises(ValueError, match="latent_skip"):
        Tokenizer(resolve("cpu32", ["model.bottleneck=vq"]))
    with pytest.raises(ValueError, match="model.bottleneck must be one of 'continuous', 'vq', got 'fsq'"):
        Tokenizer(resolve("tiny", ["model.bottleneck=fsq"]))
    with pytest.raises(ValueError, match="codebook_size must be >= 2"):
        resolve("tiny", ["model.codebook_size=1"])
    with pytest.raises(ValueError, match="latent_dim >= 2"):
        Tokenizer(resolve("tiny", ["model.bottleneck=vq", "model.latent_dim=1"]))


def test_init_codes_draws_distinct_encoder_outputs():
    vq = VectorQuantizer(8, 4)
    z = torch.randn(3, 5, 4)  # 15 vectors
    vq.init_codes(z, torch.Generator().manual_seed(0))
    flat = F.normalize(z.reshape(-1, 4), dim=-1)
    matches = (vq.codes() @ flat.T).isclose(torch.tensor(1.0), atol=1e-6)  # (K, N): code k is vector n
    assert (matches.sum(1) == 1).all() and (matches.sum(0) <= 1).all()  # every code one distinct vector
    start = vq.codes()
    few = torch.randn(2, 3, 4)  # 6 vectors for 8 codes: the last two codes keep their start
    vq.init_codes(few)
    assert torch.allclose(vq.codes()[6:], start[6:])
    assert torch.allclose((vq.codes()[:6] @ F.normalize(few.reshape(-1, 4), dim=-1).T).amax(1), torch.ones(6))


def test_a_vq_training_run_logs_codebook_terms(tmp_path):
    from fastdec.training.train import train_tokenizer

    export = train_tokenizer(resolve("tiny", list(VQ)), tmp_path / "run", progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    logged = [r for r in records if "loss" in r]
    assert logged and all({"vq_loss", "codebook_usage", "perplexity"} <= set(r) for r in logged)
    tok = Tokenizer.from_pretrained(export)
    assert tok.encode_indices(images(2)).shape == (2, 4)
