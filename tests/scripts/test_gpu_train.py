"""scripts/gpu_train.sh end to end on the CPU: ``--smoke`` with TINY=1 (32 px, tiny networks, one step
per stage, no smoke pass), the path every GPU run takes from set-up to the files it hands back."""

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import torch
from safetensors import safe_open

from fastdec.data import validation_crops
from fastdec.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parents[2]
SAFE = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python >= 3.11.4
MODELS = ("photos64-onepass", "photos64-prior", "photos64-fullres", "photos64-ms", "photos64-ms-1step")


def test_smoke_run_hands_back_packed_exports_that_decode_and_a_summary(tmp_path):
    out = tmp_path / "out"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "TINY": "1",
        "OUT": str(out),
        "WORK": str(tmp_path / "work"),
    }
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_train.sh"), "--smoke"],
        env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*(f"{name}.tar" for name in MODELS), "summary.txt", "logs.tar.gz"]
    )
    x = validation_crops(32, 2)
    for name in MODELS:
        with tarfile.open(out / f"{name}.tar") as tar:
            assert sorted(tar.getnames()) == [name, f"{name}/config.json", f"{name}/model.safetensors"]
            tar.extractall(tmp_path / "models", **SAFE)
        export = tmp_path / "models" / name
        with safe_open(export / "model.safetensors", "pt") as f:
            assert "F16" in {f.get_slice(k).get_dtype() for k in f.keys()}  # parameters in float16
        tok = Tokenizer.from_pretrained(export)
        y = tok.decode(tok.encode(x), seeds=range(2))
        assert y.shape == x.shape and torch.isfinite(y).all()
    summary = (out / "summary.txt").read_text()
    assert summary.count("  run        ok") == len(MODELS)
    assert all(f"{name}.tar" in summary for name in MODELS)
    assert "target stage_path, adversarial weight 0.5" in summary
    with tarfile.open(out / "logs.tar.gz") as tar:
        assert {"logs/onepass.out", "logs/runs-student.log.jsonl"} <= set(tar.getnames())
