"""Encode and decode a folder of images, writing the reconstructions as PNGs."""

from fastdec.cli.common import add_decode_args, decode_settings, positive_int, print_skipped


def add_parser(p):
    p.add_argument("--model", required=True, help="export directory, bundled name or thumbnail-N")
    p.add_argument("--input", required=True, help="folder of images (or 'photos-test', 'photos-val')")
    p.add_argument("--output", required=True, help="folder for the PNG reconstructions")
    p.add_argument("--limit", type=positive_int, default=10_000)
    p.add_argument(
        "--tile", action="store_true",
        help="keep each image's size: reconstruct it in overlapping tiles of the model's resolution "
        "(images larger than the model); --batch-size is then tiles per call",
    )  # fmt: skip
    p.add_argument(
        "--overlap", type=int, default=None,
        help="with --tile: least overlap of neighbouring tiles in pixels (default: resolution / 4)",
    )  # fmt: skip
    add_decode_args(p)


def run(args):
    if args.tile:
        return run_tiled(args)
    from tqdm import tqdm

    from fastdec.data import load_eval_images, save_images
    from fastdec.data.folder import png_paths
    from fastdec.eval.evaluate import reconstruct
    from fastdec.hub import load_model

    settings = decode_settings(args)
    model = load_model(args.model, resolution=args.resolution)
    images, names, report = load_eval_images(args.input, model.resolution, args.limit)
    png_paths(args.output, names)  # two inputs that would overwrite one output: refused before the work
    with tqdm(total=images.shape[0], desc="reconstruct", unit="img") as bar:
        recon = reconstruct(
            model, images, batch_size=args.batch_size, seed=args.seed, progress=bar.update, **settings
        )
    paths = save_images(recon, args.output, names)
    print(f"wrote {len(paths)} images to {args.output}; {report['n_bad']} unreadable inputs")
    print_skipped(report["bad"])
    return 0


def run_tiled(args):
    """``--tile``: each image at its own size, one at a time, image i with seed ``--seed + i``; an
    image smaller than a tile is reported and skipped."""
    import numpy as np
    from tqdm import tqdm

    from fastdec.data import save_images
    from fastdec.data.folder import ImageFolder, from_uint8, load_rgb, png_paths
    from fastdec.hub import load_model
    from fastdec.tiling import tiled_reconstruct

    settings = decode_settings(args)
    model = load_model(args.model, resolution=args.resolution)
    folder = ImageFolder(args.input, model.resolution)
    items = list(zip(folder.paths, folder.names, strict=True))[: args.limit]
    png_paths(args.output, [name for _, name in items])
    skipped, written = list(folder.bad_files), 0
    for i, (path, name) in enumerate(tqdm(items, desc="reconstruct", unit="img")):
        image = from_uint8(np.asarray(load_rgb(path, folder.max_pixels)))[None]  # (1, 3, H, W)
        if min(image.shape[2:]) < model.resolution:
            size = f"{image.shape[3]}x{image.shape[2]}"
            skipped.append(
                (path, f"{size}, smaller than the {model.resolution} px tile (reconstruct it without --tile)")
            )
            continue
        recon = tiled_reconstruct(
            model, image, overlap=args.overlap, batch_size=args.batch_size, seeds=[args.seed + i], **settings
        )
        save_images(recon.clamp(-1, 1), args.output, [name])
        written += 1
    print(f"wrote {written} images to {args.output}; {len(skipped)} inputs skipped")
    print_skipped(skipped)
    return 0
