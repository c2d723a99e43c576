"""fastdec: fast diffusion decoders for image tokenizers."""

__all__ = ["FlowAutoencoder", "LatentContract", "OnnxDecoder", "Tokenizer", "tiled_reconstruct"]

_HOMES = {
    "FlowAutoencoder": "fastdec.autoencoder",
    "LatentContract": "fastdec.latents",
    "Tokenizer": "fastdec.tokenizer",
    "OnnxDecoder": "fastdec.export.onnx",
    "tiled_reconstruct": "fastdec.tiling",
}


def __getattr__(name: str):
    """Import the public classes on first use, so ``import fastdec`` (and the CLI) stays light."""
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'fastdec' has no attribute {name!r}")
