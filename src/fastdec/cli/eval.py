"""Reconstruct held-out images and report PSNR, SSIM, rFID, NFE, FLOPs and decode time."""

import json

from fastdec.cli.common import add_decode_args, autocast_dtype, decode_settings, positive_int, write_json


def add_parser(p):
    p.add_argument("--model", required=True, help="export directory, bundled name, thumbnail-N or pca-K")
    p.add_argument(
        "--data", default="photos-test",
        help="'photos-test' (default: fixed crops of the photo corpus's test split), 'photos-val' "
        "or a folder of images",
    )  # fmt: skip
    p.add_argument("--json", help="write the metrics here")
    p.add_argument("--limit", type=positive_int, default=64, help="at most this many images")
    p.add_argument("--no-rfid", action="store_true")
    p.add_argument("--threads", type=positive_int, default=None)
    add_decode_args(p)


def run(args):
    from tqdm import tqdm

    from fastdec.data import load_eval_images
    from fastdec.eval.evaluate import evaluate
    from fastdec.hub import load_model

    settings = decode_settings(args)
    model = load_model(args.model, resolution=args.resolution, device=args.device)
    images, _, report = load_eval_images(args.data, model.resolution, args.limit)
    images = images.to(args.device)
    with tqdm(total=images.shape[0], desc="decode", unit="img") as bar:
        result, _ = evaluate(
            model, images, batch_size=args.batch_size, seed=args.seed, rfid=not args.no_rfid,
            threads=args.threads, progress=bar.update, autocast=autocast_dtype(args), **settings,
        )  # fmt: skip
    result = {"model": args.model, **result, "data": report}
    print(json.dumps({k: v for k, v in result.items() if k != "data"}, indent=2))
    if args.json:
        write_json(args.json, result)
    return 0
