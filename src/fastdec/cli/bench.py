"""Benchmarks: compare decoders (``--model``), or the cost of coarse-to-fine decoding (``--cost``)."""

from fastdec.cli.common import positive_int, positive_ints, seed, torch_device, write_json


def add_parser(p):
    p.add_argument(
        "--model",
        dest="settings",
        action="append",
        default=[],
        metavar="M[:k=v,...]",
        help="a decode setting, e.g. runs/ms3/export:steps=4/2/1,guidance=1.5,label=ms (repeat); "
        "M:backend=onnx or M:onnx=FILE.onnx decodes a one-step student through onnxruntime",
    )
    p.add_argument(
        "--data", default="photos-test",
        help="'photos-test' (default: fixed crops of the photo corpus's test split), 'photos-val' "
        "or a folder",
    )  # fmt: skip
    p.add_argument("--limit", type=positive_int, default=64)
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--no-rfid", action="store_true")
    p.add_argument("--plot", help="speed-quality plot (PNG)")
    p.add_argument("--grid", help="reconstruction grid (PNG)")
    p.add_argument("--resolution", type=positive_int, default=32, help="for baseline codecs only")
    p.add_argument("--device", type=torch_device, default="cpu", help="cpu (default) or cuda: synced timing")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (default: fp32)")
    p.add_argument("--cost", action="store_true", help="the O(log n) cost table (no trained model needed)")
    p.add_argument("--resolutions", type=positive_ints, default="32,64,128,256")
    p.add_argument("--total-steps", type=positive_int, default=30, help="T for full-res and split sampling")
    p.add_argument("--width", type=positive_int, default=256)
    p.add_argument("--depth", type=positive_int, default=4)
    p.add_argument("--patch", type=positive_int, default=8)
    p.add_argument("--repeats", type=positive_int, default=5)
    p.add_argument("--threads", type=positive_int, default=None)
    p.add_argument("--json", help="write the rows here")
    p.add_argument("--markdown", help="write the table here")


def run(args):
    if args.cost == bool(args.settings):
        raise ValueError("give either --model settings to compare or --cost")
    return run_cost(args) if args.cost else run_compare(args)


def run_compare(args):
    import torch
    from tqdm import tqdm

    from fastdec.data import load_eval_images
    from fastdec.eval.bench import compare, environment, markdown, parse_setting
    from fastdec.eval.plots import reconstruction_grid, speed_quality_plot
    from fastdec.hub import load_model
    from fastdec.io import atomic_write_text

    settings = [parse_setting(s) for s in args.settings]
    models = {s.model: load_model(s.model, resolution=args.resolution, device=args.device) for s in settings}
    resolutions = {m.resolution for m in models.values()}
    if len(resolutions) != 1:
        raise ValueError(f"models decode different resolutions {sorted(resolutions)}: compare like with like")
    images, _, report = load_eval_images(args.data, resolutions.pop(), args.limit)
    images = images.to(args.device)
    autocast = torch.bfloat16 if args.bf16 else None
    with tqdm(total=images.shape[0] * len(settings), desc="bench", unit="img") as bar:
        rows, recons = compare(
            settings, models, images, batch_size=args.batch_size, seed=args.seed, repeats=args.repeats,
            threads=args.threads, rfid=not args.no_rfid, progress=bar.update, autocast=autocast,
        )  # fmt: skip
    table = markdown(rows)
    print(table)
    if args.json:
        env = environment(images, args.batch_size, args.threads or torch.get_num_threads(), autocast)
        write_json(args.json, {"rows": rows, "environment": env, "data": report})
    if args.markdown:
        atomic_write_text(args.markdown, table + "\n")
    if args.plot:
        speed_quality_plot(rows, args.plot)
    if args.grid:
        reconstruction_grid(images, recons, args.grid)
    return 0


def run_cost(args):
    from tqdm import tqdm

    from fastdec.eval.cost import cost_table, markdown_table, max_stages
    from fastdec.io import atomic_write_text

    resolutions = list(args.resolutions)
    total = sum(2 * max_stages(r, args.patch) for r in resolutions)
    with tqdm(total=total, desc="cost", unit="setting") as bar:
        rows = cost_table(
            resolutions, args.total_steps, width=args.width, depth=args.depth, patch=args.patch,
            repeats=args.repeats, threads=args.threads, progress=bar.update,
        )  # fmt: skip
    table = markdown_table(rows)
    print(table)
    if args.json:
        write_json(args.json, rows)
    if args.markdown:
        atomic_write_text(args.markdown, table + "\n")
    return 0
