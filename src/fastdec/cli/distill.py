"""Distil a multi-scale teacher into a one-step-per-stage student; re-run to resume."""

import dataclasses

from fastdec.cli.common import add_run_args, check_config
from fastdec.config import TrainConfig
from fastdec.presets import resolve


def add_parser(p):
    p.add_argument("--teacher", required=True, help="teacher export directory or bundled name")
    add_run_args(p, "distill.adversarial_weight=0.5 (train.* and distill.* only)")


def run(args):
    import json

    from fastdec.tokenizer import Tokenizer
    from fastdec.training.distributed import is_main_process

    teacher = Tokenizer.from_pretrained(args.teacher)  # the whole export is checked up front
    # the teacher's training data: its meta records it (an export of an older version, its train section)
    data = teacher.meta.get("data", teacher.config.train.data)
    defaults = TrainConfig(data=data, steps=1000, batch_size=32, lr=1e-4, warmup_steps=50)
    base = dataclasses.replace(teacher.config, train=defaults)
    if any(o.startswith("model.") for o in args.overrides):
        raise ValueError("the student's model section is the teacher's; only train.*/distill.* may be set")
    config = resolve(base, args.overrides)
    check_config(config)
    if is_main_process():  # under torchrun every process runs this command
        resolved = config.to_dict()
        print(json.dumps({"train": resolved["train"], "distill": resolved["distill"]}, indent=2))
    if args.dry_run:
        return 0
    if not args.run:
        raise ValueError("--run DIR is required to distil")
    from fastdec.training.distill import distill

    export = distill(args.teacher, config, args.run, progress=not args.no_progress)
    if is_main_process():
        print(f"exported {export}")
    return 0
