import json

import pytest

from fastdec.cli.main import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    assert main(["train", "--preset", "tiny", "--set", "model.num_stages=2", "--run", str(run),
                 "--no-progress"]) == 0  # fmt: skip
    return run / "export"


def test_dry_run_prints_resolved_config(capsys):
    assert main(["train", "--preset", "cpu32", "--set", "model.num_stages=3", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["num_stages"] == 3


def test_eval_writes_all_metrics(trained, tmp_path):
    out = tmp_path / "m.json"
    args = ["eval", "--model", str(trained), "--limit", "4", "--steps", "2", "--json", str(out)]
    assert main(args + ["--guidance", "1.5"]) == 0
    result = json.loads(out.read_text())
    for key in ("psnr", "ssim", "rfid", "rfid_n_images", "n_images", "resolution", "nfe",
                "flops_per_image", "decode_ms_per_image", "encode_ms_per_image"):  # fmt: skip
        assert key in result, key
    assert result["nfe"] == 2 * 2 * 2 and result["n_images"] == 4 and result["flops_per_image"] > 0
    assert main(args + ["--temperature", "0.5"]) == 0
    assert json.loads(out.read_text())["decode"]["temperature"] == 0.5


def test_reconstruct_reports_bad_files(trained, tmp_path, capsys):
    from fastdec.data import save_images, validation_crops

    src = tmp_path / "in"
    save_images(validation_crops(16, 2), src, ["a", "b"])
    (src / "broken.png").write_bytes(b"not a png")
    assert main(["reconstruct", "--model", str(trained), "--input", str(src), "--output",
                 str(tmp_path / "out"), "--steps", "1"]) == 0  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]
    assert "broken.png" in capsys.readouterr().out


def test_errors_exit_nonzero(capsys, tmp_path):
    assert main(["eval", "--model", str(tmp_path / "missing")]) == 2
    assert "no model directory" in capsys.readouterr().err
    assert main(["train", "--preset", "tiny", "--set", "model.bogus=1", "--dry-run"]) == 2
