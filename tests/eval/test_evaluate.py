import pytest
import torch

from fastdec.eval.evaluate import evaluate, reconstruct
from fastdec.losses.flow_matching import FlowMatchingLoss
from fastdec.training.steps import TokenizerStep
from tests.conftest import images, tiny_tokenizer


def test_bf16_decode_matches_fp32_within_tolerance():
    model = tiny_tokenizer("model.num_stages=2")
    x = images(4)
    fp32 = reconstruct(model, x, steps=3)
    bf16 = reconstruct(model, x, steps=3, autocast=torch.bfloat16)
    assert bf16.dtype == torch.float32
    assert (bf16 - fp32).abs().mean() < 0.02  # stated tolerance: 1% of the [-1, 1] range on average


def test_bf16_training_loss_matches_fp32_within_tolerance():
    model = tiny_tokenizer().train()
    step = TokenizerStep(FlowMatchingLoss(model.pyramid), cfg_dropout=0.0)
    fp32, _ = step(model, images(8), torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16, _ = step(model, images(8), torch.Generator().manual_seed(0))
    torch.testing.assert_close(bf16.float(), fp32, rtol=0.05, atol=0.01)


def test_evaluate_reports_the_protocol_fields():
    model = tiny_tokenizer()
    result, recon = evaluate(model, images(4), batch_size=2, rfid=False, timing_repeats=1, steps=2)
    assert recon.shape == (4, 3, 16, 16)
    assert result["nfe"] == 2 and result["timing_batch_size"] == 2 and result["dtype"] == "torch.float32"
    assert result["flops_per_image"] > 0 and result["decode_ms_per_image"] > 0
    untimed, recon_untimed = evaluate(model, images(4), batch_size=2, rfid=False, time_decode=False, steps=2)
    assert "decode_ms_per_image" not in untimed and untimed["encode_ms_per_image"] > 0
    torch.testing.assert_close(recon_untimed, recon)


def test_bench_setting_spec_parses_every_decode_option():
    from fastdec.eval.bench import parse_setting

    s = parse_setting("runs/m/export:steps=4/2/1,guidance=1.5,temperature=0.5,label=ms 4-2-1")
    assert s.model == "runs/m/export" and s.label == "ms 4-2-1"
    assert s.decode == {"steps": (4, 2, 1), "guidance": 1.5, "temperature": 0.5}
    with pytest.raises(ValueError, match="unknown setting option 'tau'"):
        parse_setting("m:tau=1")
