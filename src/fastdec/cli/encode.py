"""Encode a folder of images to a latent file: raw latents or VQ token indices, as safetensors."""

from fastdec.cli.common import positive_int, print_skipped, torch_device


def add_parser(p):
    p.add_argument("--model", required=True, help="export directory or bundled model name")
    p.add_argument("--input", required=True, help="folder of images (or 'photos-val')")
    p.add_argument("--output", required=True, help="the .safetensors file to write")
    p.add_argument("--indices", action="store_true", help="write VQ token indices (N, L) instead of latents")
    p.add_argument("--limit", type=positive_int, default=10_000)
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--device", type=torch_device, default="cpu", help="cpu (default) or cuda")


def run(args):
    from tqdm import tqdm

    from fastdec.autoencoder import FlowAutoencoder, encode_batches
    from fastdec.data import load_eval_images
    from fastdec.latents import save_latents

    ae = FlowAutoencoder.from_pretrained(args.model, device=args.device)
    if args.indices and ae.config.bottleneck != "vq":
        raise ValueError(f"--indices needs a VQ model; {args.model} has a {ae.config.bottleneck} bottleneck")
    images, names, report = load_eval_images(args.input, ae.config.sample_size, args.limit)
    with tqdm(total=images.shape[0], desc="encode", unit="img") as bar:
        codes = encode_batches(
            ae, images, indices=args.indices, batch_size=args.batch_size, progress=bar.update
        )
    kind = "indices" if args.indices else "latents"
    save_latents(args.output, ae.config, names=names, **{kind: codes})
    print(f"wrote {kind} {tuple(codes.shape)} of {len(names)} images to {args.output}; "
          f"{report['n_bad']} unreadable inputs")  # fmt: skip
    print_skipped(report["bad"])
    return 0
