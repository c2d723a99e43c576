"""Decode a latent file written by ``fastdec encode`` (latents or token indices) to PNG images."""

from fastdec.cli.common import finite_float, positive_int, positive_ints, torch_device


def add_parser(p):
    p.add_argument("--model", required=True, help="export directory or bundled model name")
    p.add_argument("--input", required=True, help="a .safetensors latent file")
    p.add_argument("--output", required=True, help="folder for the PNG images")
    p.add_argument(
        "--steps", type=positive_ints, default=None,
        help="Euler steps per stage: one number for every stage, or one per stage (e.g. 4,2,1)",
    )  # fmt: skip
    p.add_argument("--total-steps", type=positive_int, default=None, help="split T steps over stages")
    p.add_argument("--guidance", type=finite_float, default=None, help="CFG weight (1 = off)")
    p.add_argument("--seed", type=int, default=0, help="image i decodes with seed + i")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--device", type=torch_device, default="cpu", help="cpu (default) or cuda")


def run(args):
    from tqdm import tqdm

    from fastdec.autoencoder import FlowAutoencoder, decode_batches
    from fastdec.cli.common import decode_settings
    from fastdec.data import save_images
    from fastdec.latents import load_latents

    ae = FlowAutoencoder.from_pretrained(args.model, device=args.device)
    file = load_latents(args.input)
    mismatches = file.contract.mismatches(ae.config)
    if mismatches:
        raise ValueError(
            f"{args.input} was written for another latent contract than {args.model}'s "
            f"(file vs model): {'; '.join(mismatches)}"
        )
    with tqdm(total=len(file.names), desc="decode", unit="img") as bar:
        images = decode_batches(
            ae,
            file.tensor,
            indices=file.kind == "indices",
            batch_size=args.batch_size,
            seed=args.seed,
            progress=bar.update,
            **decode_settings(args),
        )
    paths = save_images(images, args.output, file.names)
    print(f"wrote {len(paths)} images to {args.output}")
    return 0
