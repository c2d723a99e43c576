"""ONNX export of a one-step student's whole decode, and an onnxruntime decoder that matches it.

The graph is the coarse-to-fine decode of :meth:`fastdec.tokenizer.Tokenizer.decode` with one Euler
step per stage: every stage's network call and every transition (nearest upsample + block-noise
renoise) between them. Its noise is not drawn inside the graph but taken as inputs, one standard
normal tensor per stage, so the graph is a deterministic function and :class:`OnnxDecoder` can feed it
the noise ``Tokenizer.decode`` draws for the same seeds::

    inputs   z (B, L, d), noise_0 (B, 3, r_0, r_0), ..., noise_{S-1} (B, 3, R, R)
    output   images (B, 3, R, R)

The batch axis B is dynamic. The model and sample sections of the config are stored in the file's
metadata (``fastdec_config``).
"""

import importlib
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from fastdec.config import Config
from fastdec.diffusion.pyramid import Pyramid
from fastdec.diffusion.timesteps import euler_schedule
from fastdec.io import atomic_write, parse_json
from fastdec.sampling.sampler import stage_noises
from fastdec.sampling.settings import DecodeSettings

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
    settings = tokenizer.settings()
    steps, guidance = settings.steps, settings.guidance
    if any(k != 1 for k in steps) or guidance != 1.0:
        raise ValueError(
            "ONNX export covers one-step students (1 Euler step per stage, guidance 1, as written by "
            f"`fastdec distill`); this model decodes with steps {steps} and guidance {guidance}"
        )


class StudentDecode(nn.Module):
    """The one-step student's decode as a module: ``forward(z, *noises) -> images``.

    Equal to ``tokenizer.decode(z, seeds=seeds)`` when ``noises = stage_noises(seeds, stages)``: the
    same sampler (:meth:`fastdec.tokenizer.Tokenizer.decode_noises`), one Euler step per stage from
    local time 1 to 0. The steps are fixed here, as numbers, so that the traced graph holds them as
    constants.
    """

    def __init__(self, tokenizer):
        super().__init__()
        check_student(tokenizer)
        self.tokenizer = tokenizer
        self.schedule = euler_schedule(tokenizer.settings().steps)

    def forward(self, z: torch.Tensor, *noises: torch.Tensor) -> torch.Tensor:
        """z (B, L, d), one noise (B, 3, r_s, r_s) per stage -> images (B, 3, R, R)."""
        return self.tokenizer.decode_noises(z, noises, self.schedule)


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
    noises = stage_noises([0, 1], tokenizer.pyramid, device=device)
    names = [f"noise_{s.index}" for s in tokenizer.pyramid]
    batch = torch.export.Dim("batch")
    dynamic = {"z": {0: batch}, "noises": tuple({0: batch} for _ in names)}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter chatter about deprecated pytree and axis names
        program = torch.onnx.export(
            module, (z, *noises), input_names=["z", *names], output_names=["images"],
            dynamic_shapes=dynamic, opset_version=opset, dynamo=True, verbose=False,
        )  # fmt: skip
    proto = program.model_proto
    config = tokenizer.config.to_json(export=True)
    proto.metadata_props.append(onnx.StringStringEntryProto(key=CONFIG_KEY, value=config))
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
        self.pyramid = Pyramid(m.resolution, m.num_stages, m.gamma, m.published_block_noise)
        self.input_names = ["z", *(f"noise_{s.index}" for s in self.pyramid)]

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
        settings = DecodeSettings(seeds=seeds, temperature=temperature)
        seeds = range(z.shape[0]) if settings.seeds is None else settings.seeds
        if len(seeds) != z.shape[0]:
            raise ValueError(f"got {len(seeds)} seeds for {z.shape[0]} latents")
        noises = [settings.temperature * n for n in stage_noises(seeds, self.pyramid)]  # float32 on the CPU
        arrays = [t.numpy() for t in (z.detach().float().cpu(), *noises)]
        (images,) = self.session.run(["images"], dict(zip(self.input_names, arrays, strict=True)))
        return torch.from_numpy(images)  # (B, 3, R, R)


class OnnxTokenizer:
    """A tokenizer whose decode runs through onnxruntime: what ``fastdec bench`` times as an onnx row.

    Encoding, ``nfe`` and the FLOPs reference stay with the PyTorch ``tokenizer``; ``decoder`` must be
    an export of the same model (checked against its stored config).
    """

    def __init__(self, tokenizer, decoder: OnnxDecoder):
        if decoder.config.to_dict(export=True) != tokenizer.config.to_dict(export=True):
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

    def decode(self, z: torch.Tensor, **settings):
        """As ``Tokenizer.decode`` with its default (one-step) settings: seeds and temperature only."""
        s = DecodeSettings(**settings)
        if (s.steps, s.total_steps, s.guidance) != (None, None, None):
            raise ValueError("an ONNX decoder runs the settings it was exported with: no steps or guidance")
        temperature = self.tokenizer.settings(temperature=s.temperature).temperature
        return self.decoder.decode(z, seeds=s.seeds, temperature=temperature).to(z.device)

    def nfe(self, **settings) -> int:
        return self.tokenizer.nfe(**settings)
