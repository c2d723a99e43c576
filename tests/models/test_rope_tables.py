"""The transformer decoder computes its RoPE tables once per token grid and device, and reuses them."""

import torch

from tests.conftest import images, tiny_tokenizer


def test_cached_rope_tables_decode_like_fresh_ones():
    tok = tiny_tokenizer("model.num_stages=2")
    z = tok.encode(images(2))
    with torch.no_grad():
        first = tok.decode(z, steps=2)
        tables = tok.decoder.net.rope_tables
        assert len(tables) == 2  # one per stage resolution
        cached = {key: value for key, value in tables.items()}
        again = tok.decode(z, steps=2)
    assert all(tables[key] is cached[key] for key in cached)  # reused, not rebuilt
    torch.testing.assert_close(again, first, atol=0, rtol=0)
