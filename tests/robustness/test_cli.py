"""Bad inputs through the command line: never exit code 0, one line on stderr naming the problem."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from fastdec.cli.main import main
from fastdec.presets import resolve
from fastdec.training.state import save_state
from tests.robustness.conftest import png_claiming_size


def run(capsys, *argv) -> tuple[int, str]:
    """Exit code and stderr of ``fastdec argv``; argparse's usage errors count as exit code 2."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    for name in ("empty", "text-only", "bomb-only", "mixed"):
        (root / name).mkdir()
    (root / "text-only" / "readme.md").write_text("no images")
    (root / "bomb-only" / "bomb.png").write_bytes(png_claiming_size(9000, 9000))
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(root / "mixed" / "good.png")
    (root / "mixed" / "bomb.png").write_bytes(png_claiming_size(9000, 9000))
    (root / "mixed" / "random.jpg").write_bytes(np.random.default_rng(0).bytes(200))
    return root


@pytest.fixture(scope="module")
def broken_exports(export_dir, tmp_path_factory):
    """Export directories each broken in one way, by name."""
    root = tmp_path_factory.mktemp("broken")

    def variant(name, edit_config=None, weights=None):
        path = root / name
        shutil.copytree(export_dir, path)
        if edit_config is not None:
            payload = json.loads((path / "config.json").read_text())
            edit_config(payload)
            (path / "config.json").write_text(json.dumps(payload))
        if weights is not None:
            (path / "model.safetensors").write_bytes(weights)
        return path

    data = (export_dir / "model.safetensors").read_bytes()
    return {
        "format 2": variant("v2", lambda p: p.update(format=2)),
        "wider decoder": variant("wide", lambda p: p["config"]["model"].update(dec_width=48)),
        "no model config": variant("noconfig", lambda p: p.pop("config")),
        "truncated weights": variant("trunc", weights=data[: len(data) // 2]),
        "no weights": variant("noweights"),
    }


def test_bad_models_exit_nonzero_naming_the_problem(capsys, broken_exports, tmp_path):
    (broken_exports["no weights"] / "model.safetensors").unlink(missing_ok=True)
    cases = {
        str(tmp_path / "missing"): "no model directory",
        "no-such-model": "no bundled model",
        "thumbnail-0": "thumbnail side",
        str(broken_exports["format 2"]): "export format 2",
        str(broken_exports["wider decoder"]): "implies",
        str(broken_exports["no model config"]): "no usable model config: KeyError",
        str(broken_exports["truncated weights"]): "model.safetensors does not match the checksum",
        str(broken_exports["no weights"]): "missing model.safetensors",
    }
    for model, message in cases.items():
        for argv in (["eval", "--model", model], ["distill", "--teacher", model, "--dry-run"]):
            if model.startswith("thumbnail") and argv[0] == "distill":
                continue
            code, err = run(capsys, *argv)
            assert code == 2 and message in err and err.count("\n") == 1, (argv, err)


@pytest.mark.filterwarnings("ignore:1 unreadable image")
def test_bad_data_exits_nonzero_naming_the_problem(capsys, export_dir, folders, tmp_path):
    cases = {
        "empty": "0 candidate file(s)",
        "text-only": "0 candidate file(s)",
        "bomb-only": "possible decompression bomb",
        "missing": "neither an embedded set",
    }
    for name, message in cases.items():
        for command in (["eval", "--data"], ["reconstruct", "--output", str(tmp_path), "--input"]):
            code, err = run(capsys, *command, str(folders / name), "--model", str(export_dir))
            assert code == 2 and message in err and err.count("\n") == 1, (name, err)


def test_bad_files_among_good_ones_are_listed(capsys, export_dir, folders, tmp_path):
    with pytest.warns(UserWarning, match="2 unreadable"):
        code = main(["reconstruct", "--model", str(export_dir), "--input", str(folders / "mixed"),
                     "--output", str(tmp_path / "out"), "--steps", "1"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "2 unreadable inputs" in out and "bomb.png" in out and "random.jpg" in out
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["good.png"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--steps", "0"], "every stage needs at least one step, got steps (0,)"),
        (["--steps", "-2"], "every stage needs at least one step, got steps (-2,)"),
        (["--steps", "2.5"], "steps expects integers separated by '/' (one per stage, e.g. 4/2/1"),
        (["--steps", "1,1"], "steps expects integers separated by '/'"),
        (["--steps", "1/1/1"], "3 step counts for 2 stages"),
        (["--total-steps", "0"], "total_steps must be >= 1, got 0"),
        (["--total-steps", "1"], "total steps 1 is fewer than the 2 stages"),
        (["--batch-size", "0"], "argument --batch-size: must be a positive integer"),
        (["--limit", "-1"], "argument --limit: must be a positive integer"),
        (["--threads", "0"], "argument --threads: must be a positive integer"),
        (["--guidance", "nan"], "guidance must be finite"),
        (["--temperature", "cold"], "temperature expects a number, got 'cold'"),
        (["--device", "gpu"], "argument --device: Expected one of"),
        (["--json", "{tmp}"], "Is a directory"),
    ],
)
def test_bad_options_exit_nonzero_naming_the_problem(capsys, export_dir, tmp_path, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, err = run(capsys, "eval", "--model", str(export_dir), "--limit", "2", "--no-rfid", *argv)
    assert code == 2 and message in err, err
    assert err.splitlines()[-1].startswith("fastdec eval: error:") or "usage:" in err


def test_cuda_requested_without_cuda_is_refused(capsys, export_dir):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, err = run(capsys, "eval", "--model", str(export_dir), "--device", "cuda")
    assert code == 2 and "CUDA is not available" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--preset", "huge"], "argument --preset: invalid choice: 'huge'"),
        (["--set", "model.num_stages=4"], "coarsest stage (2 px)"),
        (["--set", "model.bogus=1"], "unknown config key 'model.bogus'"),
        (["--set", "model.num_stages"], "is not of the form section.key=value"),
        (["--set", "train.steps=0"], "train.steps must be >= 1, got 0"),
        (["--set", "train.steps=-5"], "train.steps must be >= 1, got -5"),
        (["--set", "train.batch_size=0"], "train.batch_size must be >= 1"),
        (["--set", "train.ckpt_every=0"], "train.ckpt_every must be >= 1"),
        (["--set", "train.lr=-1"], "train.lr must be > 0, got -1.0"),
        (["--set", "train.max_nonfinite=0"], "train.max_nonfinite must be >= 1, got 0"),
        (["--set", "model.enc_width=-8"], "model.enc_width must be >= 1, got -8"),
        (["--set", "sample.steps=4/0"], r"sample.steps must be >= 1, got (4, 0)"),
        (["--set", "sample.steps=4,0"], r"sample.steps expects integers separated by '/'"),
    ],
)
def test_bad_training_configs_fail_even_on_a_dry_run(capsys, argv, message):
    code, err = run(capsys, "train", "--preset", "tiny", *argv, "--dry-run")
    assert code == 2 and message in err, err


def test_unusable_run_directories_are_refused_by_name(capsys, tmp_path):
    config = resolve("tiny", ["train.steps=3"])
    cases = {
        "garbage-config": ("config.json", "cannot read the run config"),
        "orphan-states": (None, "no config.json"),
        "torn-state": ("state", "cannot read training state"),
        "state-of-another-run": ("foreign", "state-00000002.pt was written by a run with another config"),
    }
    for name, (kind, message) in cases.items():
        run_dir = tmp_path / name
        if kind == "foreign":  # a state saved beside another config, then copied into this run
            run_dir.mkdir()
            (run_dir / "config.json").write_text(resolve("tiny", ["model.latent_dim=8"]).to_json())
        save_state(run_dir, 2, {"w": torch.zeros(3)})
        if kind == "foreign":
            (run_dir / "config.json").write_text(config.to_json())
        if kind == "config.json":
            (run_dir / "config.json").write_bytes(b"\x00{not json")
        if kind == "state":
            (run_dir / "config.json").write_text(config.to_json())
            (run_dir / "state-00000002.pt").write_bytes(b"PK\x03\x04 torn")
        before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
        code, err = run(capsys, "train", "--preset", "tiny", "--set", "train.steps=3", "--run", str(run_dir),
                        "--no-progress")  # fmt: skip
        assert code == 2 and message in err and err.count("\n") == 1, (name, err)
        assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before  # nothing touched
