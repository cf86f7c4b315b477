import math

import torch

import minitransformer as mt
from minitransformer.positional import rotate_half


def test_sinusoidal_known_answers():
    table = mt.sinusoidal_table(50, 8)
    assert table[0].tolist() == [0, 1, 0, 1, 0, 1, 0, 1]  # sin(0), cos(0), ...
    for pos in (1, 7, 49):
        for i in range(4):  # PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...)
            angle = pos / 10000 ** (2 * i / 8)
            assert math.isclose(table[pos, 2 * i], math.sin(angle), abs_tol=1e-6)
            assert math.isclose(table[pos, 2 * i + 1], math.cos(angle), abs_tol=1e-6)


def test_sinusoidal_odd_width_and_relative_property():
    assert mt.sinusoidal_table(10, 7).shape == (10, 7)
    # PE(pos + k) is a fixed linear map (rotation per frequency) of PE(pos): dot products depend on k only.
    t = mt.sinusoidal_table(64, 16)
    torch.testing.assert_close(t[3] @ t[8], t[20] @ t[25], atol=1e-5, rtol=0)


def test_rope_matches_complex_rotation_reference():
    d, positions = 8, torch.arange(6)[None]
    rope = mt.RotaryEmbedding(d, max_len=16)
    x = torch.randn(1, 2, 6, d, dtype=torch.float64)
    cos, sin = rope(positions)
    ours = mt.apply_rotary(x, cos.double(), sin.double())
    # Reference: pair dimension j with j + d/2 as one complex number and multiply by e^{i pos theta_j}.
    theta = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    z = torch.complex(x[..., : d // 2], x[..., d // 2 :]) * torch.polar(
        torch.ones(6, d // 2, dtype=torch.float64), torch.arange(6, dtype=torch.float64)[:, None] * theta
    )
    torch.testing.assert_close(ours, torch.cat([z.real, z.imag], dim=-1), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(rotate_half(rotate_half(x)), -x)


def test_rope_dot_product_depends_only_on_distance():
    rope = mt.RotaryEmbedding(16, max_len=64)
    q, k = torch.randn(16), torch.randn(16)

    def rotated(v, pos):
        cos, sin = rope(torch.tensor([[pos]]))
        return mt.apply_rotary(v[None, None, None], cos, sin).flatten()

    torch.testing.assert_close(
        rotated(q, 10) @ rotated(k, 4), rotated(q, 40) @ rotated(k, 34), atol=1e-4, rtol=1e-4
    )
