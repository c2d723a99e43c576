"""The bundled models: loadable by name, small, and reproducing the numbers of their model card (docs/)."""

import re
from pathlib import Path

import pytest
import torch

from fastdec.cli import demo
from fastdec.cli.main import main
from fastdec.hub import BUNDLED_DIR, bundled_models, pack, reference_check
from fastdec.tokenizer import Tokenizer
from tests.conftest import tiny_tokenizer

NAMES = ("photos32-fullres", "photos32-ms3", "photos32-ms3-1step", "photos32-onepass")
README = Path(__file__).parents[2] / "docs" / "results.md"  # the model card table lives there


def test_every_bundled_model_ships():
    assert set(NAMES) <= set(bundled_models())


def test_bundled_models_fit_the_size_budget():
    """At most 40 MB for the 32 px family and 60 MB for every bundled model."""
    sizes = {
        d.name: sum(f.stat().st_size for f in d.rglob("*") if f.is_file()) for d in BUNDLED_DIR.iterdir()
    }
    small = sum(size for name, size in sizes.items() if name.startswith("photos32-"))
    assert small < 40e6, f"the 32 px models take {small / 1e6:.1f} MB"
    assert sum(sizes.values()) < 60e6, f"bundled models take {sum(sizes.values()) / 1e6:.1f} MB"


def _card_psnr(name: str) -> float:
    """The check PSNR of ``name`` in the model card table (a row starting with its name)."""
    for line in README.read_text().splitlines():
        cells = [c.strip(" `") for c in line.split("|")]
        if len(cells) > 2 and cells[1] == name:
            return float(re.search(r"check ([0-9.]+)", line).group(1))
    raise AssertionError(f"no model card row for {name} in {README}")


@pytest.mark.parametrize("name", NAMES)
def test_bundled_model_reproduces_its_card(name):
    model = Tokenizer.from_pretrained(name)
    recorded = model.meta["check"]["psnr"]
    assert abs(_card_psnr(name) - recorded) < 0.005  # the card shows what the export records
    assert abs(reference_check(model)["psnr"] - recorded) < 0.1


def test_pack_stores_half_parameters_and_keeps_decode(tmp_path):
    model = tiny_tokenizer()
    model.save_pretrained(tmp_path / "src")
    info = pack(tmp_path / "src", tmp_path / "packed", meta={"training": "test"})
    packed = Tokenizer.from_pretrained(tmp_path / "packed")
    from safetensors.torch import load_file

    stored = load_file(tmp_path / "packed" / "model.safetensors")
    params = {n for n, _ in model.named_parameters()}
    assert all(stored[n].dtype == torch.float16 for n in params)
    assert all(v.dtype == torch.float32 for n, v in stored.items() if n not in params)  # buffers
    assert packed.meta["training"] == "test" and packed.meta["check"] == info["check"]
    assert info["max_abs_weight_error"] <= 1e-3
    z = model.encode(torch.rand(2, 3, 16, 16) * 2 - 1)
    assert (packed.decode(z) - model.decode(z)).abs().max() < 1e-2


def test_pack_ships_chosen_decode_defaults(tmp_path):
    tiny_tokenizer().save_pretrained(tmp_path / "src")
    pack(tmp_path / "src", tmp_path / "packed", sample=("sample.steps=2", "sample.temperature=0.5"))
    packed = Tokenizer.from_pretrained(tmp_path / "packed")
    assert packed.config.sample.steps == (2,) and packed.config.sample.temperature == 0.5
    assert packed.meta["check"]["decode"] == "default settings, seeds 0..B-1"
    with pytest.raises(ValueError, match="decode defaults only"):
        pack(tmp_path / "src", tmp_path / "bad", sample=("model.dec_width=8",))


def test_demo_writes_table_and_figures(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("fastdec.models.pca.DEFAULT_FIT_IMAGES", 512)  # the PCA row, fitted fast
    fewer_steps = tuple(s.replace("steps=50", "steps=5") for s in demo.DEMO_SETTINGS)  # the same rows
    monkeypatch.setattr(demo, "DEMO_SETTINGS", fewer_steps)
    assert main(["demo", "--output", str(tmp_path), "--limit", "4", "--threads", "1"]) == 0
    for name in ("results.md", "results.json", "speed_quality.png", "reconstructions.png"):
        assert (tmp_path / name).stat().st_size > 0
    table = (tmp_path / "results.md").read_text()
    assert table.count("\n|") >= 7  # header rule + one row per decoder
    assert "PCA 128" in table and "thumbnail" in table
    assert "reconstructions.png" in capsys.readouterr().out


def test_demo_at_64_px_shows_the_64_px_family(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("fastdec.models.pca.DEFAULT_FIT_IMAGES", 1024)
    argv = ["demo", "--resolution", "64", "--output", str(tmp_path), "--limit", "2", "--threads", "1"]
    assert main(argv) == 0
    table = (tmp_path / "results.md").read_text()
    assert "one-pass (deterministic)" in table and "PCA 512" in table and "thumbnail 13x13" in table
    assert "held-out crops (64x64" in capsys.readouterr().out


def test_bundled_models_decode_as_recorded():
    """The bundled models' decodes of 4 test crops (default settings, seeds 0..3) match the ones
    recorded when they were packed (tests/hub/make_reference.py): a refactor must not change them."""
    from safetensors.torch import load_file

    from tests.hub.make_reference import REFERENCE, decodes

    recorded, now = load_file(REFERENCE), decodes()
    assert set(recorded) == set(now)
    for name, x in recorded.items():
        torch.testing.assert_close(now[name], x, atol=1e-5, rtol=0, msg=f"{name} decodes differently")
