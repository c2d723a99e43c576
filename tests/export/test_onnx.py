import contextlib
import io
import json

import pytest
import torch

from fastdec.cli.main import main
from fastdec.eval.bench import compare, parse_setting
from fastdec.sampling.sampler import stage_noises
from tests.conftest import images, tiny_tokenizer

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from fastdec.export.onnx import OnnxDecoder, OnnxTokenizer, StudentDecode, export_onnx  # noqa: E402


def student(*overrides):
    # one decoder block keeps the export (the slow part: tens of seconds on a loaded CPU) short
    return tiny_tokenizer("model.num_stages=2", "model.dec_depth=1", "sample.steps=1", *overrides)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A 2-stage one-step student saved as an export and written to ONNX by the CLI."""
    root = tmp_path_factory.mktemp("onnx")
    model = student()
    model.save_pretrained(root / "student")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["export-onnx", "--model", str(root / "student"), "--output", str(root / "s.onnx")])
    assert rc == 0
    assert float(out.getvalue().rsplit("max abs diff", 1)[1]) <= 1e-3  # the CLI's own parity check
    return model, root / "student", root / "s.onnx"


def latents(model, n=5, seed=0):
    m = model.config.model
    return torch.randn(n, m.num_latents, m.latent_dim, generator=torch.Generator().manual_seed(seed))


def test_student_module_equals_tokenizer_decode_exactly():
    model = student()
    z = latents(model)
    with torch.no_grad():
        expected = model.decode(z, seeds=[3, 1, 4, 1, 5])
        got = StudentDecode(model)(z, *stage_noises([3, 1, 4, 1, 5], model.stages))
    assert torch.equal(got, expected)


def test_onnxruntime_matches_pytorch_within_1e3(exported):
    model, _, path = exported
    z = latents(model, n=6, seed=1)
    with torch.no_grad():
        expected = model.decode(z, seeds=range(10, 16))
    decoder = OnnxDecoder(path, threads=1)
    got = decoder.decode(z, seeds=range(10, 16))
    assert got.shape == (6, 3, 16, 16) and got.dtype == torch.float32
    meta = json.loads(decoder.session.get_modelmeta().custom_metadata_map["fastdec_config"])
    assert meta == json.loads(model.config.to_json(export=True)) and set(meta) == {"model", "sample"}
    assert (got - expected).abs().max() <= 1e-3


def test_onnx_temperature_matches_pytorch(exported):
    model, _, path = exported
    z = latents(model, n=3, seed=4)
    with torch.no_grad():
        expected = model.decode(z, seeds=[1, 2, 3], temperature=0.3)
    got = OnnxTokenizer(model, OnnxDecoder(path, threads=1)).decode(z, seeds=[1, 2, 3], temperature=0.3)
    assert (got - expected).abs().max() <= 1e-3


def test_onnx_sample_alone_equals_it_in_a_batch(exported):
    model, _, path = exported
    decoder = OnnxDecoder(path)
    z = latents(model, n=4, seed=2)
    batch = decoder.decode(z, seeds=[7, 8, 9, 10])
    alone = decoder.decode(z[2:3], seeds=[9])
    torch.testing.assert_close(batch[2:3], alone, rtol=0, atol=1e-5)
    assert not torch.allclose(batch[2:3], decoder.decode(z[2:3], seeds=[0]), atol=1e-3)  # seeds matter


def test_export_refuses_a_model_that_is_not_a_one_step_student(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"one-step students .* steps \(4, 4\)"):
        export_onnx(tiny_tokenizer("model.num_stages=2"), tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="guidance 1.5"):
        export_onnx(student("sample.guidance=1.5"), tmp_path / "x.onnx")
    tiny_tokenizer("model.num_stages=2").save_pretrained(tmp_path / "teacher")
    assert (
        main(["export-onnx", "--model", str(tmp_path / "teacher"), "--output", str(tmp_path / "t.onnx")]) == 2
    )
    assert "one-step students" in capsys.readouterr().err
    assert not (tmp_path / "t.onnx").exists()


def test_onnx_decoder_errors_name_the_problem(exported, tmp_path):
    model, _, path = exported
    with pytest.raises(FileNotFoundError, match="no ONNX file"):
        OnnxDecoder(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a graph")
    with pytest.raises(ValueError, match="not a usable ONNX file"):
        OnnxDecoder(tmp_path / "junk.onnx")
    decoder = OnnxDecoder(path)
    with pytest.raises(ValueError, match=r"shape \(B, 4, 4\)"):
        decoder.decode(torch.zeros(2, 5, 4))
    with pytest.raises(ValueError, match="got 1 seeds for 2 latents"):
        decoder.decode(torch.zeros(2, 4, 4), seeds=[0])
    with pytest.raises(ValueError, match="another model"):
        OnnxTokenizer(student("model.gamma=0.25"), decoder)


def test_bench_onnx_row_matches_the_pytorch_row(exported):
    model, directory, path = exported
    settings = [
        parse_setting(f"{directory}:label=torch"),
        parse_setting(f"{directory}:onnx={path},label=onnx"),
    ]
    assert settings[1].backend == "onnx" and settings[1].onnx_file == str(path)
    rows, recons = compare(settings, {str(directory): model}, images(4), batch_size=2, repeats=1, rfid=False)
    torch_row, onnx_row = rows
    assert onnx_row["backend"] == "onnx" and onnx_row["nfe"] == torch_row["nfe"] == 2
    assert onnx_row["flops_per_image"] == torch_row["flops_per_image"] > 0
    assert abs(onnx_row["psnr"] - torch_row["psnr"]) < 1e-3
    assert (recons["onnx"] - recons["torch"]).abs().max() <= 1e-3
    with pytest.raises(ValueError, match="backend must be 'torch' or 'onnx'"):
        parse_setting("m:backend=tensorrt")
