"""The linear reference codec: a global PCA of the whole crop, behind the tokenizer's encode/decode
interface, fitted on training crops and kept in the user cache under the model name ``pca-K``.

``load_pca(K, R)`` (what ``load_model("pca-K", resolution=R)`` calls) fits K principal components of
the R*R*3 pixels of ``n`` training crops (items 0..n-1 of ``build_dataset("photos", R, split="train",
seed=0)``) and saves them as an export under ``cache_dir("pca")``. The entry is keyed by the fit
algorithm's version, K, R, n and a SHA-256 of the crops themselves, so new photos behind
``"photos"`` (or another crop resize) give a new entry: the crops are recomputed on every call
(seconds), the eigendecomposition only once.
"""

import warnings
from pathlib import Path

import torch
from torch import nn

from fastdec.checks import check_images
from fastdec.io import read_json
from fastdec.models.linear_skip import LinearSkip

DEFAULT_FIT_IMAGES = 8192  # training crops a cached PCA is fitted on (read at call time)
FIT_VERSION = "global-pca-1"  # bump when the fit changes: cached exports of the old fit are not reused
DATA_SOURCE = {"source": "photos", "split": "train", "seed": 0}


class PCACodec(nn.Module):
    """Encodes images (B, 3, R, R) in [-1, 1] into the K whitened coefficients (B, K) of a global PCA
    of the R*R*3 pixels; decodes by the inverse projection, clamped to [-1, 1].

    No network: ``nfe()`` is 0 and decode is deterministic. Inputs are checked like a tokenizer's
    (images as :func:`fastdec.checks.check_images`, coefficients as finite float (B, K)); decode
    settings (steps, guidance, seeds, ...) are accepted and ignored. Build one with :meth:`fit`,
    :meth:`from_pretrained` or :func:`load_pca`.
    """

    def __init__(self, resolution: int, components: int, info: dict | None = None):
        super().__init__()
        for name, value in (("resolution", resolution), ("PCA components", components)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if resolution < 1:
            raise ValueError(f"resolution must be >= 1, got {resolution}")
        check_components(components, resolution)
        self.res, self.components = resolution, components
        self.enc = LinearSkip("encode", resolution, components, 1, components)
        self.dec = LinearSkip("decode", resolution, components, 1, components)
        self.info = dict(info or {})  # how it was fitted: saved as the export's config
        self.meta: dict = {}

    @property
    def resolution(self) -> int:
        return self.res

    @classmethod
    @torch.no_grad()
    def fit(cls, images: torch.Tensor, components: int, info: dict | None = None) -> "PCACodec":
        """The codec of the ``components`` leading principal components of ``images`` (N, 3, R, R)."""
        resolution = int(images.shape[-1]) if torch.is_tensor(images) and images.ndim == 4 else 1
        check_images(images, resolution)
        codec = cls(resolution, components, info)
        explained = codec.enc.fit_pca(images)  # the one eigendecomposition
        w = codec.enc.weight.double()  # (K, D) rows v_i / sqrt(lambda_i): orthogonal
        codec.dec.mean.copy_(codec.enc.mean)
        codec.dec.weight.copy_(w.T / (w * w).sum(1))  # v_i * sqrt(lambda_i): the inverse on the span
        codec.dec.residual_var.copy_(codec.enc.residual_var)
        codec.meta = {
            "explained_variance": explained,
            "residual_var_per_pixel": float(codec.enc.residual_var),
        }
        return codec

    def _check_device(self, x: torch.Tensor, what: str) -> None:
        if x.device != self.enc.weight.device:
            raise ValueError(f"{what} are on {x.device}, the codec on {self.enc.weight.device}")

    def _placed(self, x: torch.Tensor, what: str) -> torch.Tensor:
        """``x`` in the codec's dtype (any float input is accepted, like the thumbnail's)."""
        self._check_device(x, what)
        return x.to(self.enc.weight.dtype)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, R, R) in [-1, 1] -> coefficients (B, K)."""
        check_images(images, self.res, lambda x: self._check_device(x, "images"))
        return self.enc(self._placed(images, "images")).flatten(1)  # (B, K)

    def linear_decode(self, z: torch.Tensor) -> torch.Tensor:
        """Coefficients (B, K) -> the linear reconstruction (B, 3, R, R), not clamped."""
        self.check_latents(z)
        return self.dec(self._placed(z, "coefficients"), self.res, self.res)

    def decode(self, z: torch.Tensor, **settings) -> torch.Tensor:
        """Coefficients (B, K) -> images (B, 3, R, R) in [-1, 1]; ``settings`` (steps, guidance,
        seeds, ...) have nothing to act on and are accepted only so that callers can treat every codec
        alike."""
        return self.linear_decode(z).clamp(-1, 1)

    def check_latents(self, z: torch.Tensor) -> None:
        """Refuse anything but finite float coefficients (B, K) on the codec's device."""
        k = self.components
        if not torch.is_tensor(z) or not z.is_floating_point():
            found = z.dtype if torch.is_tensor(z) else type(z).__name__
            raise ValueError(f"PCA coefficients must be a float tensor, got {found}")
        if z.ndim != 2 or z.shape[1] != k or z.shape[0] == 0:
            raise ValueError(
                f"PCA coefficients must have shape (B, {k}) for this codec, got {tuple(z.shape)}: "
                "latents of another codec?"
            )
        self._check_device(z, "PCA coefficients")
        if not torch.isfinite(z).all():
            raise ValueError("PCA coefficients contain NaN or inf")

    def nfe(self, **_settings) -> int:
        return 0

    def config(self) -> dict:
        return {**self.info, "codec": "pca", "resolution": self.res, "components": self.components}

    def save_pretrained(self, directory: str | Path, meta: dict | None = None) -> None:
        """Write ``config.json`` + ``model.safetensors`` (:func:`fastdec.io.save_export`)."""
        from fastdec.io import save_export

        payload = {"config": self.config(), "meta": {**self.meta, **(meta or {})}}
        save_export(directory, self.state_dict(), payload)

    @classmethod
    def from_pretrained(cls, directory: str | Path, device="cpu") -> "PCACodec":
        """Load an export of :meth:`save_pretrained`; errors name the export and the mismatch."""
        from fastdec.io import CONFIG_NAME, check_payload, load_export

        directory = Path(directory)
        tensors, payload = load_export(directory)
        try:
            check_payload(payload)
            config = dict(payload["config"])
            if config.get("codec") != "pca":
                raise ValueError(f"codec is {config.get('codec')!r}, not 'pca'")
            info = {k: v for k, v in config.items() if k not in ("codec", "resolution", "components")}
            model = cls(config["resolution"], config["components"], info)
        except Exception as err:
            raise ValueError(
                f"{directory / CONFIG_NAME} holds no usable PCA codec config: {type(err).__name__}: {err}"
            ) from None
        expected = {k: v.shape for k, v in model.state_dict().items()}
        if set(tensors) != set(expected):
            raise ValueError(
                f"weights in {directory} do not match a PCA codec: got {sorted(tensors)[:8]}, "
                f"expected {sorted(expected)}"
            )
        for key, shape in expected.items():
            t = tensors[key]
            if t.shape != shape or not t.is_floating_point() or not torch.isfinite(t).all():
                raise ValueError(
                    f"weight {key} in {directory} is {tuple(t.shape)} {t.dtype}, expected finite float "
                    f"{tuple(shape)}"
                )
        model.load_state_dict({k: v.float() for k, v in tensors.items()})
        model.meta = payload.get("meta", {})
        return model.to(device).eval()


def check_components(components, resolution: int) -> None:
    full = 3 * resolution * resolution
    if isinstance(components, bool) or not isinstance(components, int) or not 1 <= components <= full:
        raise ValueError(
            f"PCA components must be an integer in [1, {full}] (3 x {resolution} x {resolution} pixels), "
            f"got {components!r}"
        )


def is_pca_export(directory: str | Path) -> bool:
    """Whether ``directory`` holds a config.json of :meth:`PCACodec.save_pretrained` (False for a
    tokenizer export, a missing or unreadable file)."""
    try:
        payload = read_json(Path(directory) / "config.json")
        return payload["config"]["codec"] == "pca"
    except (OSError, ValueError, TypeError, KeyError):
        return False


def parse_pca(spec: str, resolution: int) -> int | None:
    """``"pca-128"`` -> 128; a name that is not ``pca-...`` (or an existing directory) -> None.

    Raises:
        ValueError: ``pca-`` followed by anything but an integer in [1, 3*R*R], naming it.
    """
    kind, sep, arg = spec.partition("-")
    if kind != "pca" or not sep:
        return None
    if not arg.isdigit():
        if Path(spec).is_dir():  # a directory that happens to be named pca-something
            return None
        raise ValueError(
            f"PCA components in {spec!r} must be an integer in [1, {3 * resolution * resolution}], "
            f"got {arg!r}"
        )
    check_components(int(arg), resolution)
    return int(arg)


def fit_crops(resolution: int, n: int) -> torch.Tensor:
    """The crops a cached PCA is fitted on: items 0..n-1 of the ``"photos"`` training split, (n, 3, R, R)."""
    from fastdec.data import build_dataset

    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"the number of fit images must be an integer >= 2, got {n!r}")
    data = build_dataset("photos", resolution, split="train", seed=0, length=n)
    return torch.stack([data[i] for i in range(n)])


def load_pca(components: int, resolution: int, fit_images: int | None = None) -> PCACodec:
    """The ``pca-K`` codec: from the user cache, or fitted on training crops and cached.

    Args:
        components: K, in [1, 3*R*R].
        resolution: R.
        fit_images: n training crops (default :data:`DEFAULT_FIT_IMAGES`).
    """
    from fastdec.cache import cache_dir, content_key

    check_components(components, resolution)
    n = DEFAULT_FIT_IMAGES if fit_images is None else fit_images
    crops = fit_crops(resolution, n)
    data_key = content_key(crops.numpy().tobytes())
    key = content_key(FIT_VERSION, str(components), str(resolution), str(n), data_key)
    path = cache_dir("pca") / f"pca{components}-{resolution}px-n{n}-{key[:16]}"
    info = {"fit_images": n, "data_key": data_key, "fit": FIT_VERSION, "data": DATA_SOURCE}
    if path.is_dir():
        try:
            codec = PCACodec.from_pretrained(path)
            expected = {**info, "codec": "pca", "resolution": resolution, "components": components}
            if all(codec.config().get(k) == v for k, v in expected.items()):
                return codec
            warnings.warn(f"cached PCA codec {path} does not match its key: fitting it again", stacklevel=2)
        except (OSError, ValueError) as err:
            warnings.warn(f"unusable cached PCA codec {path} ({err}): fitting it again", stacklevel=2)
    codec = PCACodec.fit(crops, components, info)
    codec.save_pretrained(path)
    return codec.eval()
