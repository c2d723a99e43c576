import numpy as np
import pytest
import torch
from PIL import Image

from fastdec.autoencoder import FlowAutoencoder
from fastdec.cli.main import main
from fastdec.data import load_eval_images, save_images, to_uint8, validation_crops
from fastdec.latents import load_latents
from tests.conftest import tiny_tokenizer


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    for name, overrides in {
        "vq": (
            "model.bottleneck=vq",
            "model.codebook_size=16",
            "model.latent_kind=grid",
            "model.num_latents=16",
        ),
        "tokens": (),
        "wide": ("model.latent_dim=8",),
    }.items():
        tiny_tokenizer(*overrides).save_pretrained(root / name)
    src = root / "images"
    save_images(validation_crops(16, 3), src, ["a", "b", "sub/c"])
    return root


def read_pngs(folder, names):
    return np.stack([np.asarray(Image.open(folder / f"{n}.png")) for n in names])


@pytest.mark.parametrize("indices", [False, True], ids=["latents", "indices"])
def test_cli_round_trip_equals_the_python_api(exports, tmp_path, indices):
    model, src, file = exports / "vq", exports / "images", tmp_path / "codes.safetensors"
    flag = ["--indices"] if indices else []
    assert main(["encode", "--model", str(model), "--input", str(src), "--output", str(file), *flag]) == 0
    written = load_latents(file)
    assert written.kind == ("indices" if indices else "latents") and written.names == [
        "a.png",
        "b.png",
        "sub/c.png",
    ]
    assert main(["decode", "--model", str(model), "--input", str(file), "--output", str(tmp_path / "out"),
                 "--steps", "2", "--seed", "7"]) == 0  # fmt: skip

    ae = FlowAutoencoder.from_pretrained(model)
    images, _, _ = load_eval_images(str(src), 16)
    with torch.no_grad():
        out = ae.encode(images)
        expected = ae.decode(out.latents, steps=2, seeds=[7, 8, 9]).sample
    assert torch.equal(written.tensor, out.indices if indices else out.latents)
    assert np.array_equal(read_pngs(tmp_path / "out", ["a", "b", "sub/c"]), to_uint8(expected))


def test_decode_refuses_another_models_file(exports, tmp_path, capsys):
    file = tmp_path / "t.safetensors"
    assert main(["encode", "--model", str(exports / "tokens"), "--input", str(exports / "images"),
                 "--output", str(file)]) == 0  # fmt: skip
    capsys.readouterr()
    assert (
        main(["decode", "--model", str(exports / "wide"), "--input", str(file), "--output", str(tmp_path)])
        == 2
    )
    assert "latent_channels: 4 vs 8" in capsys.readouterr().err


def test_encode_and_decode_errors_exit_nonzero(exports, tmp_path, capsys):
    args = ["--model", str(exports / "tokens"), "--input", str(exports / "images")]
    assert main(["encode", *args, "--output", str(tmp_path / "x.safetensors"), "--indices"]) == 2
    assert "needs a VQ model" in capsys.readouterr().err
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 16)
    assert (
        main(["decode", "--model", str(exports / "tokens"), "--input", str(junk), "--output", str(tmp_path)])
        == 2
    )
    assert "not a safetensors file" in capsys.readouterr().err
    missing = ["decode", "--model", str(exports / "tokens"), "--input", str(tmp_path / "no.safetensors")]
    assert main([*missing, "--output", str(tmp_path)]) == 2
    assert "latent file not found" in capsys.readouterr().err
