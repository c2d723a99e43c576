"""Linear skip paths around the encoder and decoder, warm-started from PCA.

A learned tokenizer at CPU compute starts far below a linear codec with as many numbers. With
``latent_skip`` the encoder adds a linear projection of the image to its output, and an
x-predicting decoder adds the linear reconstruction of z to its output: initialised from the
principal components of training crops (whitened), the tokenizer starts as the PCA codec and its
transformers learn what a linear codec cannot represent. Regions: the whole image for 1-D tokens
(one PCA of R*R*3 pixels into L*d numbers), each encoder patch for grid latents (a PCA of p*p*3
pixels into d numbers per latent).
"""

import scipy.linalg
import torch
from torch import nn


def top_eigenpairs(matrix: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest eigenvalues (k,), clamped positive, and eigenvectors (n, k) of a symmetric
    float64 (n, n) matrix, largest first. LAPACK's subset solver computes only those k, several
    times faster than the full decomposition when k is small."""
    n = matrix.shape[0]
    vals, vecs = scipy.linalg.eigh(matrix.numpy(), subset_by_index=[n - k, n - 1])  # ascending
    return torch.from_numpy(vals[::-1].copy()).clamp_min(1e-8), torch.from_numpy(vecs[:, ::-1].copy())


def regions(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, n, C*size*size) non-overlapping square regions, row-major."""
    b, c, h, w = images.shape
    x = images.view(b, c, h // size, size, w // size, size).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // size) * (w // size), c * size * size)


def from_regions(x: torch.Tensor, size: int, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`regions`: (B, n, C*size*size) -> (B, C, H, W)."""
    b = x.shape[0]
    gh, gw = height // size, width // size
    x = x.view(b, gh, gw, -1, size, size).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, -1, height, width)


class LinearSkip(nn.Module):
    """One direction of a linear codec: ``"encode"``: ``z_lin = W_e (regions(x) - mu)``, reshaped to
    (B, L, d); ``"decode"``: ``x_lin = W_d z_lin + mu``. The encoder holds one, the decoder the other.

    Args:
        direction: ``"encode"`` or ``"decode"``.
        region: region side in pixels.
        per_region: latent numbers per region.
        num_latents, latent_dim: the latent shape.
    """

    def __init__(
        self,
        direction: str,
        region: int,
        per_region: int,
        num_latents: int,
        latent_dim: int,
        channels: int = 3,
    ):
        super().__init__()
        if direction not in ("encode", "decode"):
            raise ValueError(f"direction must be 'encode' or 'decode', got {direction!r}")
        self.direction = direction
        self.region = region
        self.shape = (num_latents, latent_dim)
        dim = channels * region * region
        # Buffers, not parameters: the PCA codec stays fixed. Trained with Adam, whose steps do not
        # scale with a weight's size, it drifts away from PCA faster than the transformers learn.
        self.register_buffer("mean", torch.zeros(dim))
        shape = (per_region, dim) if direction == "encode" else (dim, per_region)
        self.register_buffer("weight", torch.zeros(shape))
        # per-pixel variance the linear codec leaves unexplained (set by fit_pca); the decoder uses it
        # to blend the noisy input with the linear decode (see VelocityModel.predict)
        self.register_buffer("residual_var", torch.ones(()))

    def forward(self, x: torch.Tensor, height: int | None = None, width: int | None = None) -> torch.Tensor:
        """encode: images (B, C, H, W) -> (B, L, d); decode: z (B, L, d) -> images (B, C, height, width)."""
        if self.direction == "encode":
            r = regions(x, self.region) - self.mean  # (B, n, C*r*r)
            return (r @ self.weight.T).reshape(x.shape[0], *self.shape)  # (B, L, d)
        n = (height // self.region) * (width // self.region)
        coeffs = x.reshape(x.shape[0], n, -1)  # (B, n, k)
        return from_regions(coeffs @ self.weight.T + self.mean, self.region, height, width)

    @torch.no_grad()
    def fit_pca(self, images: torch.Tensor) -> float:
        """Set the mean and the whitened projection (encode) or its inverse (decode) from images
        (N, C, H, W); returns the fraction of variance the kept components explain."""
        r = regions(images.double(), self.region).flatten(0, 1)  # (M, D) = (N*n, C*r*r)
        mean = r.mean(0)
        x = r - mean
        (m, dim), k = x.shape, self.weight.shape[0] if self.direction == "encode" else self.weight.shape[1]
        if k <= m < dim:
            # fewer samples than pixels: the Gram matrix X X^T / M has the covariance's nonzero
            # eigenvalues, and X^T u / sqrt(M lambda) are its eigenvectors (M^3 work, not D^3)
            matrix = x @ x.T / m  # the Gram matrix
            vals, u = top_eigenpairs(matrix, k)
            vecs = x.T @ u / (m * vals).sqrt()
        else:
            matrix = x.T @ x / m  # the covariance
            vals, vecs = top_eigenpairs(matrix, k)  # (k,), (D, k)
        self.mean.copy_(mean)
        self.weight.copy_((vecs / vals.sqrt()).T if self.direction == "encode" else vecs * vals.sqrt())
        total = torch.trace(matrix)  # the sum of all eigenvalues: the same for both matrices
        self.residual_var.fill_(float((total - vals.sum()) / dim))
        return float(vals.sum() / total)
