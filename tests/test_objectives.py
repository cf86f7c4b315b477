"""Tests for minitransformer.objectives: the CLM, MLM and seq2seq losses and BERT-style masking."""

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from minitransformer.data import ascii_tokenizer, load_text, mlm_windows
from minitransformer.errors import ShapeError
from minitransformer.objectives import (
    clm_loss,
    mask_tokens,
    masked_accuracy,
    mlm_loss,
    seq2seq_loss,
    shift_for_clm,
)

LOSSES = [clm_loss, mlm_loss, seq2seq_loss]


def _logits_and_labels(seed=0, b=3, t=7, v=11, ignored=0.3):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, t, v, generator=g)
    labels = torch.randint(v, (b, t), generator=g)
    labels[torch.rand(b, t, generator=g) < ignored] = -100
    return logits, labels


# ----------------------------------------------------------------------------- losses


@pytest.mark.parametrize("loss_fn", LOSSES)
def test_losses_equal_torch_cross_entropy(loss_fn):
    logits, labels = _logits_and_labels()
    # torch's own (B, V, T) layout: an independent way to ask for the same number.
    expected = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100)
    torch.testing.assert_close(loss_fn(logits, labels), expected)


@pytest.mark.parametrize("loss_fn", LOSSES)
def test_losses_known_answer(loss_fn):
    # V = 2, logits (0, ln 3): p = (1/4, 3/4). Targets 1 and 0 score -ln(3/4) and -ln(1/4);
    # the third position is ignored, so the mean is over two positions.
    logits = torch.tensor([[[0.0, math.log(3)], [0.0, math.log(3)], [5.0, -5.0]]])
    labels = torch.tensor([[1, 0, -100]])
    expected = (-math.log(0.75) - math.log(0.25)) / 2
    assert loss_fn(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    assert loss_fn(torch.zeros(2, 3, 5), torch.ones(2, 3, dtype=torch.long)).item() == pytest.approx(
        math.log(5)
    )


def test_clm_loss_custom_ignore_index():
    logits, labels = _logits_and_labels(seed=1, ignored=0.0)
    labels[0, :3] = 4  # now "4" is the ignored label
    expected = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=4)
    torch.testing.assert_close(clm_loss(logits, labels, ignore_index=4), expected)
    assert not torch.isclose(clm_loss(logits, labels), expected)


def test_seq2seq_label_smoothing():
    logits, labels = _logits_and_labels(seed=2)
    expected = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, label_smoothing=0.1)
    torch.testing.assert_close(seq2seq_loss(logits, labels, label_smoothing=0.1), expected)
    # By hand: (1 - eps) * NLL of the right token + eps * mean over all V classes of -log p.
    keep = labels != -100
    logp = logits.log_softmax(-1)[keep]  # (N, V)
    nll = -logp.gather(1, labels[keep][:, None]).squeeze(1)
    by_hand = (0.9 * nll + 0.1 * -logp.mean(-1)).mean()
    torch.testing.assert_close(seq2seq_loss(logits, labels, label_smoothing=0.1), by_hand)
    assert seq2seq_loss(logits, labels, 0.1) > seq2seq_loss(logits, labels)  # random logits: smoothing costs
    for bad in (-0.1, 1.0, "0.1"):
        with pytest.raises(ValueError, match="label_smoothing"):
            seq2seq_loss(logits, labels, label_smoothing=bad)


@pytest.mark.parametrize("loss_fn", LOSSES)
def test_losses_name_the_bad_argument(loss_fn):
    logits, labels = _logits_and_labels()
    with pytest.raises(ShapeError, match=r"\(B, T\)"):
        loss_fn(logits, labels[:, :-1])
    with pytest.raises(ShapeError, match="logits"):
        loss_fn(logits[0], labels)
    with pytest.raises(TypeError, match="integer"):
        loss_fn(logits, labels.float())


def test_shift_for_clm_matches_clm_batch_convention():
    ids = torch.tensor([[5, 6, 7, 8], [0, 0, 3, 4]])
    mask = torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]])  # second row left-padded
    inputs, labels = shift_for_clm(ids, mask)
    assert inputs.tolist() == [[5, 6, 7], [0, 0, 3]]
    assert labels.tolist() == [[6, 7, 8], [-100, 3, 4]]
    assert ids.tolist() == [[5, 6, 7, 8], [0, 0, 3, 4]]  # input untouched
    assert shift_for_clm(ids)[1].tolist() == [[6, 7, 8], [0, 3, 4]]
    with pytest.raises(ShapeError, match="attention_mask"):
        shift_for_clm(ids, mask[:, 1:])


def test_shifted_loss_equals_hugging_face_causal_lm_loss():
    loss_utils = pytest.importorskip("transformers.loss.loss_utils")
    logits, _ = _logits_and_labels(seed=3, t=6)
    ids = torch.randint(11, (3, 6), generator=torch.Generator().manual_seed(4))
    mask = torch.ones(3, 6, dtype=torch.long)
    mask[1, 4:] = 0  # right padding
    _, labels = shift_for_clm(ids, mask)
    hf_labels = ids.masked_fill(mask == 0, -100)  # HF: labels = input_ids, the loss shifts them
    expected = loss_utils.ForCausalLMLoss(logits, hf_labels, vocab_size=11)
    torch.testing.assert_close(clm_loss(logits[:, :-1], labels), expected)


def test_masked_accuracy_known_answer():
    logits = torch.zeros(1, 4, 3)
    logits[0, 0, 2] = logits[0, 1, 1] = logits[0, 2, 0] = logits[0, 3, 0] = 1.0  # argmax 2, 1, 0, 0
    labels = torch.tensor([[2, 1, 1, -100]])  # right, right, wrong, ignored
    assert masked_accuracy(logits, labels) == pytest.approx(2 / 3)
    assert math.isnan(masked_accuracy(logits, torch.full((1, 4), -100)))


# ----------------------------------------------------------------------------- mask_tokens

# ids 0..4 are special, as in a CharTokenizer built with these special tokens.
TOK = SimpleNamespace(vocab_size=100, mask_token_id=4, special_token_ids=frozenset(range(5)))
PAD, BOS, EOS = 0, 2, 3


def _mlm_batch(b=200, t=1000, seed=0):
    """Regular tokens with [BOS] first, an [EOS] in each row, and the last 20 rows half padding."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 100, (b, t), generator=g)
    ids[:, 0], ids[:, t // 2] = BOS, EOS
    attention_mask = torch.ones(b, t, dtype=torch.long)
    attention_mask[-20:, t // 2 + 1 :] = 0
    ids[attention_mask == 0] = PAD
    return ids, attention_mask


def _within(count, n, p, sigmas=5.0):
    """Is count / n within `sigmas` binomial standard deviations of p?"""
    return abs(count / n - p) <= sigmas * math.sqrt(p * (1 - p) / n)


def test_mask_tokens_proportions():
    ids, attention_mask = _mlm_batch()
    masked, labels = mask_tokens(
        ids, TOK, generator=torch.Generator().manual_seed(0), attention_mask=attention_mask
    )
    eligible = (ids >= 5) & (attention_mask == 1)
    selected = labels != -100
    n_eligible, n_sel = int(eligible.sum()), int(selected.sum())
    assert n_eligible == 200 * 1000 - 2 * 200 - 20 * 499  # minus [BOS], [EOS] and padding
    assert _within(n_sel, n_eligible, 0.15)
    n_mask = int((masked[selected] == TOK.mask_token_id).sum())
    n_same = int((masked[selected] == ids[selected]).sum())
    n_other = n_sel - n_mask - n_same
    # A "random" replacement is one of 95 regular tokens, so 1 in 95 of them equals the original.
    assert _within(n_mask, n_sel, 0.8)
    assert _within(n_same, n_sel, 0.1 + 0.1 / 95)
    assert _within(n_other, n_sel, 0.1 * 94 / 95)


def test_mask_tokens_never_touches_specials_or_padding():
    ids, attention_mask = _mlm_batch(b=50, t=200)
    original = ids.clone()
    masked, labels = mask_tokens(ids, TOK, 0.5, torch.Generator().manual_seed(1), attention_mask)
    assert torch.equal(ids, original)  # the input is not modified
    forbidden = (ids < 5) | (attention_mask == 0)
    assert (labels[forbidden] == -100).all() and torch.equal(masked[forbidden], ids[forbidden])
    selected = labels != -100
    assert torch.equal(labels[selected], ids[selected])  # labels are the original ids
    assert torch.equal(masked[~selected], ids[~selected])  # unselected tokens unchanged
    replaced = masked[selected & (masked != TOK.mask_token_id)]
    assert replaced.min() >= 5  # random replacements are regular tokens, never special
    # padding given only by attention_mask (not by a special id) is excluded too
    _, labels = mask_tokens(
        torch.full((4, 6), 7), TOK, 1.0, attention_mask=torch.tensor([[1, 1, 0, 0, 0, 0]] * 4)
    )
    assert (labels[:, :2] == 7).all() and (labels[:, 2:] == -100).all()


def test_mask_tokens_reproducible_and_extremes():
    ids, _ = _mlm_batch(b=4, t=50)
    a = mask_tokens(ids, TOK, generator=torch.Generator().manual_seed(5))
    b = mask_tokens(ids, TOK, generator=torch.Generator().manual_seed(5))
    c = mask_tokens(ids, TOK, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[1], c[1])
    assert (mask_tokens(ids, TOK, 0.0)[1] == -100).all()
    assert torch.equal(mask_tokens(ids, TOK, 1.0)[1] != -100, ids >= 5)


def test_mask_tokens_errors():
    ids, _ = _mlm_batch(b=2, t=10)
    no_mask = SimpleNamespace(vocab_size=100, mask_token_id=None, special_token_ids=frozenset({0}))
    with pytest.raises(ValueError, match=r"\[MASK\]"):
        mask_tokens(ids, no_mask)
    with pytest.raises(ValueError, match="mlm_probability"):
        mask_tokens(ids, TOK, mlm_probability=1.5)
    with pytest.raises(ShapeError, match="input_ids"):
        mask_tokens(ids[0], TOK)
    with pytest.raises(ShapeError, match="attention_mask"):
        mask_tokens(ids, TOK, attention_mask=torch.ones(2, 9))


def test_mask_tokens_with_the_real_tokenizer():
    tok = ascii_tokenizer(special_tokens=("[PAD]", "[UNK]", "[MASK]"))
    ids = torch.tensor(tok.encode(load_text()[:20_000]))
    x = mlm_windows(ids, 16, 64, generator=torch.Generator().manual_seed(0))
    masked, labels = mask_tokens(x, tok, generator=torch.Generator().manual_seed(0))
    selected = labels != -100
    assert selected.any() and (masked[selected] == tok.mask_token_id).any()
    assert "[MASK]" in tok.decode(masked[0].tolist()) or not selected[0].any()
    with pytest.raises(ValueError, match=r"\[MASK\]"):
        mask_tokens(x, ascii_tokenizer())


@settings(deadline=None)
@given(b=st.integers(1, 4), t=st.integers(1, 12), p=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_mask_tokens_invariants(b, t, p, seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 100, (b, t), generator=g)  # specials anywhere
    masked, labels = mask_tokens(ids, TOK, p, generator=g)
    selected = labels != -100
    assert masked.shape == labels.shape == ids.shape
    assert (ids[selected] >= 5).all() and torch.equal(labels[selected], ids[selected])
    assert torch.equal(masked[~selected], ids[~selected])
