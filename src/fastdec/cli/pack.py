"""Store a trained export for shipping: float16 parameters, with the model card's reproduction check."""

import json


def add_parser(p):
    p.add_argument("--model", required=True, help="export directory or bundled name")
    p.add_argument("--output", required=True, help="directory for the packed export")
    p.add_argument("--fp32", action="store_true", help="keep float32 parameters (default: float16)")
    p.add_argument("--note", default="", help="recorded in the export's meta as 'training'")


def run(args):
    from fastdec.hub import pack

    meta = {"training": args.note} if args.note else {}
    info = pack(args.model, args.output, half=not args.fp32, meta=meta)
    print(json.dumps({"output": args.output, **info}, indent=2))
    return 0
