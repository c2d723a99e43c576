"""Train a tokenizer (encoder + flow-matching decoder); re-run the same command to resume."""

from fastdec.cli.common import add_run_args, check_config
from fastdec.presets import PRESETS, resolve


def add_parser(p):
    p.add_argument("--preset", default="cpu32", choices=sorted(PRESETS))
    add_run_args(p, "model.num_stages=3")


def run(args):
    from fastdec.training.distributed import is_main_process
    from fastdec.training.train import check_run, train_tokenizer

    config = resolve(args.preset, args.overrides)
    check_config(config)
    check_run(config)
    if is_main_process():  # under torchrun every process runs this command
        print(config.to_json())
    if args.dry_run:
        return 0
    if not args.run:
        raise ValueError("--run DIR is required to train")
    export = train_tokenizer(config, args.run, progress=not args.no_progress)
    if is_main_process():
        print(f"exported {export}")
    return 0
