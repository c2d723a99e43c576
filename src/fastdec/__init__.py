"""fastdec: fast diffusion decoders for image tokenizers."""
