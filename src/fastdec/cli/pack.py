"""Store a trained export for shipping: float16 parameters, with the model card's reproduction check."""

import json


def add_parser(p):
    p.add_argument("--model", required=True, help="export directory or bundled name")
    p.add_argument("--output", required=True, help="directory for the packed export")
    p.add_argument("--fp32", action="store_true", help="keep float32 parameters (default: float16)")
    p.add_argument(
        "--prior-export", metavar="DIR",
        help="a packed one-pass export beside --output holding this model's encoder and prior: "
        "store them once, there, by reference",
    )  # fmt: skip
    p.add_argument("--note", default="", help="recorded in the export's meta as 'training'")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="sample.KEY=VALUE",
        help="default decode setting shipped with the model, e.g. sample.steps=4/4/4 (repeatable)",
    )  # fmt: skip


def run(args):
    from fastdec.hub import pack

    meta = {"training": args.note} if args.note else {}
    info = pack(
        args.model, args.output, half=not args.fp32, meta=meta, sample=tuple(args.overrides),
        prior_export=args.prior_export,
    )  # fmt: skip
    print(json.dumps({"output": args.output, **info}, indent=2))
    return 0
