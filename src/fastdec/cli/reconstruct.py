"""Encode and decode a folder of images, writing the reconstructions as PNGs."""

from fastdec.cli.common import add_decode_args, decode_settings, positive_int


def add_parser(p):
    p.add_argument("--model", required=True, help="export directory, bundled name or thumbnail-N")
    p.add_argument("--input", required=True, help="folder of images (or 'photos-val')")
    p.add_argument("--output", required=True, help="folder for the PNG reconstructions")
    p.add_argument("--limit", type=positive_int, default=10_000)
    add_decode_args(p)


def run(args):
    from tqdm import tqdm

    from fastdec.data import load_eval_images, save_images
    from fastdec.eval.evaluate import reconstruct
    from fastdec.hub import load_model

    model = load_model(args.model, resolution=args.resolution)
    images, names, report = load_eval_images(args.input, model.resolution, args.limit)
    with tqdm(total=images.shape[0], desc="reconstruct", unit="img") as bar:
        recon = reconstruct(
            model,
            images,
            batch_size=args.batch_size,
            seed=args.seed,
            progress=bar.update,
            **decode_settings(args),
        )
    paths = save_images(recon, args.output, names)
    print(f"wrote {len(paths)} images to {args.output}; {report['n_bad']} unreadable inputs")
    for path, reason in report["bad"]:
        print(f"  skipped {path}: {reason}")
    return 0
