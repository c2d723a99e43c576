"""ONNX export of a one-step student's whole decode, and an onnxruntime decoder that matches it.

The graph is the coarse-to-fine decode of :meth:`fastdec.tokenizer.Tokenizer.decode` with one Euler
step per stage: every stage's network call and every transition (nearest upsample + block-noise
renoise) between them. Its noise is not drawn inside the graph but taken as inputs, one standard
normal tensor per stage, so the graph is a deterministic function and :class:`OnnxDecoder` can feed it
the noise ``Tokenizer.decode`` draws for the same seeds::

    inputs   z (B, L, d), noise_0 (B, 3, r_0, r_0), ..., noise_{S-1} (B, 3, R, R)
    output   images (B, 3, R, R)

The batch axis B is dynamic. The model config is stored in the file's metadata (``fastdec_config``).
"""

import importlib
import math
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from fastdec.config import Config
from fastdec.diffusion.pyramid import stage_specs
from fastdec.io import atomic_write, parse_json
from fastdec.sampling.multiscale import multiscale_sample, stage_noises
from fastdec.tokenizer import _ints

CONFIG_KEY = "fastdec_config"


def _require(name: str):
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise ImportError(
            f"{name} is not installed; install fastdec's onnx extra: pip install 'fastdec[onnx]'"
        ) from err


def check_student(tokenizer) -> None:
    """Refuse a tokenizer whose default decode is not one Euler step per stage without guidance."""
    m = tokenizer.config.model
    if m.decoder != "flow":
        raise ValueError(f"ONNX export covers flow decoders, got decoder={m.decoder!r}")
    steps, guidance = tokenizer.decode_steps(), tokenizer.config.sample.guidance
    if any(k != 1 for k in steps) or guidance != 1.0:
        raise ValueError(
            "ONNX export covers one-step students (1 Euler step per stage, guidance 1, as written by "
            f"`fastdec distill`); this model decodes with steps {steps} and guidance {guidance}"
        )


class StudentDecode(nn.Module):
    """The one-step student's decode as a module: ``forward(z, *noises) -> images``.

    Equal to ``tokenizer.decode(z, seeds=seeds)`` when ``noises = stage_noises(seeds, stages)``: the
    same driver (:func:`multiscale_sample`) with a stage solver that takes the one Euler step from
    local time 1 to 0, ``x + (0 - 1) v(x, 1)``.
    """

    def __init__(self, tokenizer):
        super().__init__()
        check_student(tokenizer)
        self.tokenizer = tokenizer

    def forward(self, z: torch.Tensor, *noises: torch.Tensor) -> torch.Tensor:
        """z (B, L, d), one noise (B, 3, r_s, r_s) per stage -> images (B, 3, R, R)."""
        tok, m = self.tokenizer, self.tokenizer.config.model
        prior = tok.decoder.prior_image(z)  # depends on z only: once per decode

        def solve(stage, x):
            t = torch.ones_like(x[:, 0, 0, 0])  # (B,) local time 1, the stage start
            return x - tok.velocity_fn(z, stage, 1.0, prior)(x, t)  # Euler step, dt = 0 - 1

        sample = multiscale_sample(
            tok.stages, solve, noises, gamma=m.gamma, published_sign=m.published_block_noise
        )
        return tok.decoder.to_image(sample, prior)


def export_onnx(tokenizer, path: str | Path, *, opset: int = 18) -> Path:
    """Write the one-step decode of ``tokenizer`` to ``path`` (an ``.onnx`` file), batch axis dynamic.

    Uses torch's ``torch.export``-based exporter, which traces the whole coarse-to-fine decode (every
    stage's network call and transition, docs/method.md §7): slow, and slower the larger the model. The
    example inputs sit on the tokenizer's device.

    The file is written like every artefact (:func:`fastdec.io.atomic_write`): a kill or a full disk
    leaves the previous file, never a torn one.

    Raises:
        ValueError: the model is not a one-step student (see :func:`check_student`).
        OSError: the file cannot be written (e.g. no space left), naming it.
    """
    onnx = _require("onnx")
    _require("onnxscript")  # torch's exporter translates through it
    module = StudentDecode(tokenizer)
    m, device = tokenizer.config.model, tokenizer.z_null.device
    z = torch.zeros(
        2, m.num_latents, m.latent_dim, device=device
    )  # (B, L, d); B = 2: no size-1 axis baked in
    noises = stage_noises([0, 1], tokenizer.stages, device=device)
    names = [f"noise_{s.index}" for s in tokenizer.stages]
    batch = torch.export.Dim("batch")
    dynamic = {"z": {0: batch}, "noises": tuple({0: batch} for _ in names)}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter chatter about deprecated pytree and axis names
        program = torch.onnx.export(
            module, (z, *noises), input_names=["z", *names], output_names=["images"],
            dynamic_shapes=dynamic, opset_version=opset, dynamo=True, verbose=False,
        )  # fmt: skip
    proto = program.model_proto
    proto.metadata_props.append(onnx.StringStringEntryProto(key=CONFIG_KEY, value=tokenizer.config.to_json()))
    path = Path(path)
    atomic_write(path, lambda tmp: onnx.save(proto, tmp, format="protobuf"))
    return path


class OnnxDecoder:
    """An exported one-step decode run by onnxruntime on the CPU.

    ``decode(z, seeds=...)`` draws the noise of :meth:`fastdec.tokenizer.Tokenizer.decode` for the same
    seeds (:func:`stage_noises`), so the two agree up to float rounding.

    Args:
        path: a file written by :func:`export_onnx`.
        threads: onnxruntime intra-op threads (default: onnxruntime's choice).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an ONNX file, or one without fastdec's config metadata.
    """

    def __init__(self, path: str | Path, *, threads: int | None = None):
        ort = _require("onnxruntime")
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no ONNX file {str(path)!r}")
        options = ort.SessionOptions()
        if threads is not None:
            if threads < 1:
                raise ValueError(f"threads must be >= 1, got {threads}")
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own types for unreadable or invalid graphs
            raise ValueError(f"{path} is not a usable ONNX file: {type(err).__name__}: {err}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if CONFIG_KEY not in meta:
            raise ValueError(f"{path} has no {CONFIG_KEY!r} metadata: not written by fastdec export-onnx")
        self.path = path
        self.config = Config.from_dict(parse_json(meta[CONFIG_KEY], f"{CONFIG_KEY} of {path}"))
        m = self.config.model
        self.stages = stage_specs(m.resolution, m.num_stages, m.gamma)
        self.input_names = ["z", *(f"noise_{s.index}" for s in self.stages)]

    @property
    def resolution(self) -> int:
        return self.config.model.resolution

    def decode(self, z: torch.Tensor, *, seeds=None, temperature: float = 1.0) -> torch.Tensor:
        """Latents (B, L, d) -> images (B, 3, R, R) float32; seeds and temperature as in
        ``Tokenizer.decode``."""
        m = self.config.model
        if not torch.is_tensor(z) or z.ndim != 3 or tuple(z.shape[1:]) != (m.num_latents, m.latent_dim):
            shape = tuple(z.shape) if torch.is_tensor(z) else type(z).__name__
            raise ValueError(f"latents must have shape (B, {m.num_latents}, {m.latent_dim}), got {shape}")
        if not z.is_floating_point() or not torch.isfinite(z).all():
            raise ValueError(f"latents must be finite floats, got dtype {z.dtype}")
        seeds = list(range(z.shape[0])) if seeds is None else list(_ints("seeds", seeds))
        if len(seeds) != z.shape[0]:
            raise ValueError(f"got {len(seeds)} seeds for {z.shape[0]} latents")
        if not (math.isfinite(temperature) and temperature >= 0):
            raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
        noises = [temperature * n for n in stage_noises(seeds, self.stages)]  # float32 on the CPU
        arrays = [t.numpy() for t in (z.detach().float().cpu(), *noises)]
        (images,) = self.session.run(["images"], dict(zip(self.input_names, arrays, strict=True)))
        return torch.from_numpy(images)  # (B, 3, R, R)


class OnnxTokenizer:
    """A tokenizer whose decode runs through onnxruntime: what ``fastdec bench`` times as an onnx row.

    Encoding, ``nfe`` and the FLOPs reference stay with the PyTorch ``tokenizer``; ``decoder`` must be
    an export of the same model (checked against its stored config).
    """

    def __init__(self, tokenizer, decoder: OnnxDecoder):
        if decoder.config.to_dict() != tokenizer.config.to_dict():
            raise ValueError(f"{decoder.path} was exported from another model than the one given")
        check_student(tokenizer)
        self.tokenizer = tokenizer
        self.decoder = decoder

    @classmethod
    def build(
        cls, tokenizer, path: str | Path | None = None, *, threads: int | None = None
    ) -> "OnnxTokenizer":
        """Run ``tokenizer``'s decode from the export at ``path``, or from a fresh export when None."""
        if path is not None:
            return cls(tokenizer, OnnxDecoder(path, threads=threads))
        with tempfile.TemporaryDirectory() as tmp:  # the session holds the graph in memory once loaded
            return cls(
                tokenizer, OnnxDecoder(export_onnx(tokenizer, Path(tmp) / "decode.onnx"), threads=threads)
            )

    @property
    def resolution(self) -> int:
        return self.tokenizer.resolution

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.tokenizer.encode(images)

    def decode(
        self, z: torch.Tensor, *, seeds=None, steps=None, total_steps=None, guidance=None, temperature=None
    ):
        """As ``Tokenizer.decode`` with its default (one-step) settings; other settings are an error."""
        if (steps, total_steps, guidance) != (None, None, None):
            raise ValueError("an ONNX decoder runs the settings it was exported with: no steps or guidance")
        tau = self.tokenizer.config.sample.temperature if temperature is None else float(temperature)
        return self.decoder.decode(z, seeds=seeds, temperature=tau).to(z.device)

    def nfe(self, steps=None, total_steps=None, guidance=None, temperature=None) -> int:
        return self.tokenizer.nfe(steps, total_steps, guidance)
