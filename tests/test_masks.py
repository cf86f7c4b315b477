import pytest
import torch

import minitransformer as mt


def test_causal_mask_known_answer():
    assert mt.causal_mask(3).int().tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    assert mt.causal_mask(2, 4).int().tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]  # bottom-right
    with pytest.raises(ValueError, match="t_q <= t_k"):
        mt.causal_mask(4, 2)


def test_padding_mask_hides_padded_keys_from_everyone():
    m = mt.padding_mask(torch.tensor([[1, 1, 0], [1, 0, 0]]))
    assert m.shape == (2, 1, 1, 3)
    assert m[:, 0, 0].tolist() == [[True, True, False], [True, False, False]]


def test_combine_is_logical_and():
    pad = mt.padding_mask(torch.tensor([[1, 1, 0]]))
    both = mt.combine_masks(pad, None, mt.causal_mask(3))
    assert both.shape == (1, 1, 3, 3)
    assert both[0, 0].int().tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 0]]
    assert mt.combine_masks(None, None) is None


@pytest.mark.parametrize(
    "bad,match",
    [
        ([[1, 0]], "must be a tensor"),
        (torch.ones(2, 2, 2), "shape \\(batch, seq_len\\)"),
        (torch.tensor([[2, 1]]), "only 0"),
    ],
)
def test_padding_mask_rejects_bad_input(bad, match):
    with pytest.raises((TypeError, ValueError), match=match):
        mt.padding_mask(bad)
