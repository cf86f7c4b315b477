"""matvec.py: row-block products equal F.linear, and decoding with them equals decoding without."""

import pytest
import torch
import torch.nn.functional as F

from minitransformer import matvec
from minitransformer.config import TransformerConfig
from minitransformer.generation import generate
from minitransformer.models import GPT


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("out", [6, 7, 9, 50])
@pytest.mark.parametrize("parts", [2, 3, 4])
@pytest.mark.parametrize("lead", [(1,), (1, 1), (5, 1), (2, 3)])
def test_row_blocks_equal_f_linear(out, parts, lead):
    torch.manual_seed(out * parts)
    w, b, x = torch.randn(out, 16), torch.randn(out), torch.randn(*lead, 16)
    blocks = matvec.row_blocks(w, parts)
    assert blocks.blocks.shape == (parts, out // parts, 16) and blocks.rest.shape == (out % parts, 16)
    assert blocks.blocks.data_ptr() == w.data_ptr()  # a view: nothing copied
    torch.testing.assert_close(matvec.linear(x, blocks, b), F.linear(x, w, b))
    torch.testing.assert_close(matvec.linear(x, blocks), F.linear(x, w))


def test_for_decoding_splits_only_where_it_pays(two_threads):
    big = torch.randn(matvec.MIN_SPLIT_BYTES // 4 // 64 + 1, 64)
    assert isinstance(matvec.for_decoding(big, None)[0], matvec.RowBlocks)
    assert not isinstance(matvec.for_decoding(big[:8], None)[0], matvec.RowBlocks)  # small
    assert not isinstance(matvec.for_decoding(big.bfloat16(), None)[0], matvec.RowBlocks)  # measured slower
    assert not isinstance(matvec.for_decoding(big.t(), None)[0], matvec.RowBlocks)  # not contiguous
    torch.set_num_threads(1)
    assert not isinstance(matvec.for_decoding(big, None)[0], matvec.RowBlocks)


@pytest.mark.parametrize("bias,knobs", [(True, {}), (False, {}), (True, {"num_beams": 3})])
def test_decoding_with_row_blocks_equals_decoding_without(two_threads, monkeypatch, bias, knobs):
    cfg = TransformerConfig(vocab_size=301, d_model=64, n_heads=4, n_layers=2, d_ff=256, max_len=64,
                            bias=bias)
    torch.manual_seed(0)
    model = GPT(cfg).eval()
    prompt = torch.randint(0, 301, (3, 5))
    split = []
    original = matvec.for_decoding

    def counted(w, b):
        chosen = original(w, b)
        split.append(isinstance(chosen[0], matvec.RowBlocks))
        return chosen

    monkeypatch.setattr(matvec, "MIN_SPLIT_BYTES", 0)
    monkeypatch.setattr(matvec, "for_decoding", counted)
    with torch.no_grad():
        fast = generate(model, prompt, max_new_tokens=20, do_sample=False, output_scores=True, **knobs,
                         return_dict_in_generate=True)
    assert split and all(split)  # every step weight and the head went through row blocks
    monkeypatch.setattr(matvec, "MIN_SPLIT_BYTES", 1 << 62)
    with torch.no_grad():
        whole = generate(model, prompt, max_new_tokens=20, do_sample=False, output_scores=True, **knobs,
                         return_dict_in_generate=True)
    assert torch.equal(fast.sequences, whole.sequences)
    torch.testing.assert_close(torch.stack(fast.scores), torch.stack(whole.scores))


def test_widened_product_is_f_linear_in_float32_arithmetic():
    torch.manual_seed(1)
    x, w = torch.randn(1, 96).bfloat16(), torch.randn(40, 96).bfloat16()
    product = matvec.widened_product(x, w)
    assert product.dtype == torch.bfloat16 and product.shape == (1, 40)
    exact = x.float() @ w.float().T  # every bfloat16 number is exact in float32
    torch.testing.assert_close(product.float(), exact.to(torch.bfloat16).float(), atol=0, rtol=0.01)
    torch.testing.assert_close(product, F.linear(x, w))


def test_compiled_bfloat16_decoding_matches_torch_kernels():
    cfg = TransformerConfig(vocab_size=97, d_model=64, n_heads=4, n_layers=1, d_ff=128, max_len=32)
    torch.manual_seed(2)
    model = GPT(cfg).to(torch.bfloat16).eval()
    prompt = torch.randint(0, 97, (1, 4))
    chosen = []
    original = matvec.for_decoding
    with pytest.MonkeyPatch.context() as patch, matvec.compiled(native=False):  # torch.compile's loop
        patch.setattr(matvec, "for_decoding", lambda w, b: chosen.append(original(w, b)) or chosen[-1])
        with torch.no_grad():
            fused = generate(model, prompt, max_new_tokens=6, do_sample=False, output_logits=True,
                             return_dict_in_generate=True)
    assert chosen and all(isinstance(w, matvec.Fused) for w, _ in chosen)
    with torch.no_grad():
        kernels = generate(model, prompt, max_new_tokens=6, do_sample=False, output_logits=True,
                           return_dict_in_generate=True)
    assert torch.equal(fused.sequences[:, :5], kernels.sequences[:, :5])  # the prompt and first token
    for a, b in zip(fused.logits, kernels.logits):  # bfloat16 rounding apart, no more
        torch.testing.assert_close(a.float(), b.float(), atol=0.05, rtol=0.02)


def test_compiled_is_restored_after_its_block():
    with pytest.raises(RuntimeError), matvec.compiled():
        assert isinstance(matvec.for_decoding(torch.ones(2, 2).bfloat16(), None)[0], matvec.Fused)
        raise RuntimeError
    assert not isinstance(matvec.for_decoding(torch.ones(2, 2).bfloat16(), None)[0], matvec.Fused)


def test_one_compiled_loop_serves_every_shape():
    """The benchmark decodes three model sizes in one process: fifteen weight shapes, parameters among
    them. torch.compile stops compiling after 8 versions of a function and runs it eagerly (10x slower
    here), so the loop must be compiled once for all shapes, not once per shape."""
    from torch._dynamo.utils import counters

    before = counters["stats"]["unique_graphs"]
    with matvec.compiled(native=False), torch.inference_mode():  # torch.compile's loop, not native_step.c's
        for out, d_in in [(12, 8), (8, 8), (40, 8), (8, 40), (65, 24), (24, 24), (96, 24), (24, 96), (300, 24)]:
            weight = torch.nn.Parameter(torch.randn(out, d_in).bfloat16())
            x = torch.randn(1, 1, d_in).bfloat16()
            fused, _ = matvec.for_decoding(weight, None)
            torch.testing.assert_close(matvec.linear(x, fused), F.linear(x, weight))
    assert counters["stats"]["unique_graphs"] - before <= 2


@pytest.mark.parametrize("weight, parts, match", [
    (torch.ones(4), 2, r"weight must be a matrix \(out, in\), got"),
    ("W", 2, "weight must be a matrix"),
    (torch.ones(4, 3), 0, "parts must be"),
    (torch.ones(4, 3), 1.5, "parts must be"),
])
def test_row_blocks_names_a_bad_argument(weight, parts, match):
    with pytest.raises(ValueError, match=match):
        matvec.row_blocks(weight, parts)
