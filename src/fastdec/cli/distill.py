"""Distil a multi-scale teacher into a one-step-per-stage student; re-run to resume."""

import dataclasses

from fastdec.config import Config, TrainConfig, resolve
from fastdec.hub import resolve_model


def add_parser(p):
    p.add_argument("--teacher", required=True, help="teacher export directory or bundled name")
    p.add_argument("--run", help="run directory (states, log, export)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override train.* / distill.* values, e.g. --set distill.adversarial_weight=0.5",
    )
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--no-progress", action="store_true")


def run(args):
    import json

    from fastdec.io import load_export

    _, payload = load_export(resolve_model(args.teacher))
    teacher = Config.from_dict(payload["config"])
    defaults = TrainConfig(data=teacher.train.data, steps=1000, batch_size=32, lr=1e-4, warmup_steps=50)
    base = dataclasses.replace(teacher, train=defaults)
    if any(o.startswith("model.") for o in args.overrides):
        raise ValueError("the student's model section is the teacher's; only train.*/distill.* may be set")
    config = resolve(base, args.overrides)
    print(json.dumps({"train": config.to_dict()["train"], "distill": config.to_dict()["distill"]}, indent=2))
    if args.dry_run:
        return 0
    if not args.run:
        raise ValueError("--run DIR is required to distil")
    from fastdec.training.distill import distill

    print(f"exported {distill(args.teacher, config, args.run, progress=not args.no_progress)}")
    return 0
