"""Decode a latent file written by ``fastdec encode`` (latents or token indices) to PNG images."""

from fastdec.cli.common import add_decode_settings


def add_parser(p):
    p.add_argument("--model", required=True, help="export directory or bundled model name")
    p.add_argument("--input", required=True, help="a .safetensors latent file")
    p.add_argument("--output", required=True, help="folder for the PNG images")
    add_decode_settings(p)


def run(args):
    from tqdm import tqdm

    from fastdec.autoencoder import FlowAutoencoder, decode_batches
    from fastdec.cli.common import decode_settings
    from fastdec.data import save_images
    from fastdec.latents import load_latents

    settings = decode_settings(args)
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
            **settings,
        )
    paths = save_images(images, args.output, file.names)
    print(f"wrote {len(paths)} images to {args.output}")
    return 0
