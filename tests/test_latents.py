import json

import pytest
import torch
from safetensors.torch import save_file

from fastdec.latents import LatentContract, load_latents, save_latents
from fastdec.presets import resolve

TOKENS = LatentContract.from_model_config(resolve("tiny").model)
GRID = LatentContract.from_model_config(
    resolve("tiny", ["model.latent_kind=grid", "model.num_latents=16"]).model
)
VQ = LatentContract.from_model_config(
    resolve("tiny", ["model.bottleneck=vq", "model.codebook_size=16"]).model
)


def test_contract_from_config():
    assert TOKENS.latent_shape == (4, 4) and TOKENS.codebook_size == 0 and TOKENS.scaling_factor == 1.0
    assert GRID.latent_shape == (4, 4, 4)
    assert VQ.bottleneck == "vq" and VQ.codebook_size == 16
    assert LatentContract.from_json(GRID.to_json()) == GRID


def test_layouts_round_trip_row_major():
    z = torch.randn(2, 16, 4)  # (B, L, d)
    public = GRID.to_public(z)
    assert public.shape == (2, 4, 4, 4)
    assert torch.equal(public[:, :, 1, 2], z[:, 1 * 4 + 2])  # latent (row 1, column 2)
    assert torch.equal(GRID.to_tokens(public), z)
    assert torch.equal(TOKENS.to_public(z[:, :4]), z[:, :4]) and torch.equal(
        TOKENS.to_tokens(z[:, :4]), z[:, :4]
    )


def test_mismatches_name_binding_fields_only():
    assert TOKENS.mismatches(VQ) == ["bottleneck: 'continuous' vs 'vq'", "codebook_size: 0 vs 16"]
    rescaled = LatentContract(**{**json.loads(TOKENS.to_json()), "scaling_factor": 0.5})
    assert TOKENS.mismatches(rescaled) == []  # files hold raw latents: the normalisation does not bind


def test_file_round_trip(tmp_path):
    z = torch.randn(3, 4, 4, 4)
    save_latents(tmp_path / "g.safetensors", GRID, latents=z, names=["a.png", "b/c.jpg", "d"])
    f = load_latents(tmp_path / "g.safetensors")
    assert f.kind == "latents" and f.contract == GRID and f.names == ["a.png", "b/c.jpg", "d"]
    assert torch.equal(f.tensor, z)
    tokens = torch.tensor([[0, 15, 3, 3]])
    save_latents(tmp_path / "t.safetensors", VQ, indices=tokens)
    f = load_latents(tmp_path / "t.safetensors")
    assert f.kind == "indices" and f.names == ["0"] and torch.equal(f.tensor, tokens)


def test_writing_bad_content_is_refused(tmp_path):
    path = tmp_path / "x.safetensors"
    with pytest.raises(ValueError, match="exactly one"):
        save_latents(path, TOKENS)
    with pytest.raises(ValueError, match=r"\(L, d\) = \(4, 4\)"):
        save_latents(path, TOKENS, latents=torch.zeros(1, 4, 5))
    with pytest.raises(ValueError, match="VQ tokenizer"):
        save_latents(path, TOKENS, indices=torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        save_latents(path, VQ, indices=torch.full((1, 4), 16))
    with pytest.raises(ValueError, match="2 names for 1"):
        save_latents(path, TOKENS, latents=torch.zeros(1, 4, 4), names=["a", "b"])
    assert not path.exists()


def test_reading_foreign_files_names_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_latents(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not safetensors at all")
    with pytest.raises(ValueError, match="not a safetensors file"):
        load_latents(junk)
    plain = tmp_path / "plain.safetensors"
    save_file({"latents": torch.zeros(1, 4, 4)}, plain)
    with pytest.raises(ValueError, match="not a fastdec latent file"):
        load_latents(plain)
    meta = {"fastdec_latents_format": "1", "kind": "latents", "contract": TOKENS.to_json(), "names": '["a"]'}
    wrong = tmp_path / "wrong.safetensors"
    save_file({"latents": torch.zeros(1, 4, 5)}, wrong, metadata=meta)
    with pytest.raises(ValueError, match=r"do not match"):
        load_latents(wrong)
    nan = tmp_path / "nan.safetensors"
    save_file({"latents": torch.full((1, 4, 4), float("nan"))}, nan, metadata=meta)
    with pytest.raises(ValueError, match="NaN"):
        load_latents(nan)
