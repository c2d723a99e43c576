"""Export a one-step student's whole decode to ONNX, checked against PyTorch with onnxruntime."""

from fastdec.cli.common import positive_int


def add_parser(p):
    p.add_argument("--model", required=True, help="export directory or bundled name of a one-step student")
    p.add_argument("--output", required=True, help="the .onnx file to write")
    p.add_argument("--check-batch", type=positive_int, default=4, help="latents for the parity check")


def run(args):
    import torch

    from fastdec.export.onnx import OnnxDecoder, export_onnx
    from fastdec.tokenizer import Tokenizer

    model = Tokenizer.from_pretrained(args.model)
    path = export_onnx(model, args.output)
    m = model.config.model
    z = torch.randn(args.check_batch, m.num_latents, m.latent_dim, generator=torch.Generator().manual_seed(0))
    seeds = range(args.check_batch)
    with torch.no_grad():
        diff = (OnnxDecoder(path).decode(z, seeds=seeds) - model.decode(z, seeds=seeds)).abs().max().item()
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB); onnxruntime vs PyTorch on {args.check_batch} "
          f"latents: max abs diff {diff:.2e}")  # fmt: skip
    return 0
