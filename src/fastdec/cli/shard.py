"""Write tar shards (WebDataset layout) from a folder of images, for training at scale."""

import json

from fastdec.cli.common import positive_int, print_skipped


def add_parser(p):
    p.add_argument("--input", required=True, help="folder of images (ImageNet class sub-folders included)")
    p.add_argument("--output", required=True, help="folder for the shards (must hold none of --prefix)")
    p.add_argument("--shard-size", type=positive_int, default=1000, help="images per shard")
    p.add_argument("--prefix", default="shard", help="shard file names: PREFIX-000000.tar, ...")


def run(args):
    from fastdec.data import write_shards

    report = write_shards(args.input, args.output, args.shard_size, prefix=args.prefix)
    summary = {k: v for k, v in report.items() if k not in ("shards", "bad")}
    print(json.dumps({**summary, "n_shards": len(report["shards"])}, indent=2))
    print_skipped(report["bad"])
    print(f"wrote {len(report['shards'])} shard(s) to {args.output}")
    return 0
