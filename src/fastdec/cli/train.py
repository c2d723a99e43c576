"""Train a tokenizer (encoder + flow-matching decoder); re-run the same command to resume."""

from fastdec.config import PRESETS, resolve


def add_parser(p):
    p.add_argument("--preset", default="cpu32", choices=sorted(PRESETS))
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set model.num_stages=3 (repeatable)",
    )
    p.add_argument("--run", required=False, help="run directory (states, log, export)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--no-progress", action="store_true")


def run(args):
    config = resolve(args.preset, args.overrides)
    print(config.to_json())
    if args.dry_run:
        return 0
    if not args.run:
        raise ValueError("--run DIR is required to train")
    from fastdec.training.train import train_tokenizer

    export = train_tokenizer(config, args.run, progress=not args.no_progress)
    print(f"exported {export}")
    return 0
