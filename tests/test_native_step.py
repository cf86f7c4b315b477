"""native_step.c: the hand-written bfloat16 block step computes what the eager step computes, and decoding
keeps working where it cannot be built."""

import ctypes
import warnings

import pytest
import torch

import minitransformer as mt
from minitransformer import matvec, native_step
from minitransformer.errors import ShapeError
from minitransformer.generation import generate
from minitransformer.tools.pretrained import load_model
from tests.test_bandwidth import bfloat16_copy
from tests.test_compiled_block import bf16_gpt, steps

CONFIGS = [
    dict(norm_first=True, bias=True, activation="gelu_tanh"),  # GPT-2's block
    dict(norm_first=False, bias=False, activation="relu"),  # the 2017 paper's order, no biases
    dict(norm_first=True, bias=True, activation="gelu", n_heads=2),
]


@pytest.fixture(scope="module")
def shakespeare():
    model, tokenizer = load_model("shakespeare-char")
    return model.eval(), tokenizer


@pytest.mark.parametrize("kw", CONFIGS, ids=["pre-LN-gelu-tanh", "post-LN-relu-no-bias", "gelu-2-heads"])
def test_native_step_equals_the_eager_bfloat16_step(kw):
    model = bf16_gpt(pos_encoding="learned", **kw)
    ids = torch.randint(0, 61, (1, 14))
    mask = torch.ones(1, 14, dtype=torch.long)
    want, eager_cache = steps(model, ids, mask, compiled=False)
    got, cache = steps(model, ids, mask, compiled=True)
    assert cache.native  # the native step ran
    # bfloat16 rounds each stored number to 3 significant digits; the native sums run in float32
    torch.testing.assert_close(got.float(), want.float(), atol=0.08, rtol=0.03)
    for fast, eager in zip(cache.layers, eager_cache.layers):
        assert fast.length == eager.length
        torch.testing.assert_close(fast.keys.float(), eager.keys.float(), atol=0.05, rtol=0.03)
        torch.testing.assert_close(fast.values.float(), eager.values.float(), atol=0.05, rtol=0.03)


def test_native_and_torch_compile_steps_agree():
    model = bf16_gpt(pos_encoding="learned")
    ids, mask = torch.randint(0, 61, (1, 14)), torch.ones(1, 14, dtype=torch.long)
    native, _ = steps(model, ids, mask, compiled=True)
    cache = model.new_cache()
    with torch.inference_mode(), matvec.compiled(native=False):
        model(ids[:, :5], mask[:, :5], cache=cache)
        compiled = torch.stack([model.step(ids[:, t : t + 1], torch.full((1, 1), t), mask[:, : t + 1], cache)
                                for t in range(5, 14)])
    assert cache.native is None  # torch.compile's step ran
    torch.testing.assert_close(native.float(), compiled.float(), atol=0.08, rtol=0.03)


def test_native_greedy_text_on_the_bundled_model_equals_float32s_for_200_tokens(shakespeare):
    """Of test_bandwidth's two prompts, "KING RICHARD III:\n" parts from float32 at new token 139, where
    float32's best two logits are 0.0025 apart (torch.compile's step: at 199, 0.03 apart); the next test
    checks every position that is not such a near tie."""
    model, tokenizer = shakespeare
    ids = torch.tensor([tokenizer.encode("First Citizen:\n")])
    full = mt.generate(model, ids, max_new_tokens=200)
    with matvec.compiled():
        half = mt.generate(bfloat16_copy(), ids, max_new_tokens=200)
    assert torch.equal(full, half)


def test_native_step_picks_float32s_token_wherever_float32_is_sure(shakespeare):
    model, tokenizer = shakespeare
    text = mt.generate(model, torch.tensor([tokenizer.encode("\n")]), max_new_tokens=255)  # (1, 256)
    half, cache = bfloat16_copy(), None
    with torch.inference_mode():
        full = model(text)[0, 1:].float()  # (255, V): the predictions after the first token
        cache = half.new_cache()
        half(text[:, :1], cache=cache)
        with matvec.compiled():
            steps = [half.step(text[:, t : t + 1], torch.full((1, 1), t), None, cache) for t in range(1, 255)]
    assert cache.native
    full, native = full[:-1], torch.cat(steps).float()  # (254, V) each
    best_two = full.topk(2, dim=-1).values
    sure = best_two[:, 0] - best_two[:, 1] > 0.2
    agree = full.argmax(-1) == native.argmax(-1)
    assert sure.sum() > 200 and agree[sure].all()
    assert (full - native).abs().max() < 0.2


@pytest.mark.parametrize("threads", [1, 2])
def test_native_linear_equals_float32_sums_rounded_once(threads):
    torch.manual_seed(0)
    weight, bias = torch.randn(300, 70).bfloat16(), torch.randn(300).bfloat16()
    x = torch.randn(1, 70).bfloat16()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = native_step.linear(x, weight, bias)
    finally:
        torch.set_num_threads(before)
    want = (x.double() @ weight.double().T).bfloat16().float() + bias.float()
    # the C adds the bias before the one rounding; the reference rounds before adding it
    torch.testing.assert_close(got.float(), want, atol=0.05, rtol=0.01)


def test_the_native_step_declines_what_it_does_not_compute():
    """None, and the model runs torch.compile's step: a float32 tensor, a padded position, rotary positions."""
    def declines(model, x, mask=None, rotary=None):
        cache = model.new_cache()
        with torch.inference_mode(), matvec.compiled():
            model(torch.randint(0, 61, (1, 3)), cache=cache)
            return native_step.model_step(model, x, cache, mask, rotary) is None

    model, x = bf16_gpt(pos_encoding="learned"), torch.zeros(1, 1, 64).bfloat16()
    assert not declines(model, x)
    assert declines(model, x.float())
    assert declines(model, x, mask=torch.tensor([[[[True, False, True, True]]]]))
    assert declines(model, x, rotary=(torch.ones(1, 1, 16), torch.zeros(1, 1, 16)))
    model.norm_f.float()  # a model cast in part
    assert declines(model, x)


def test_a_full_cache_is_refused_before_anything_is_written():
    model = bf16_gpt(pos_encoding="learned", max_len=8)
    ids = torch.randint(0, 61, (1, 8))
    cache = model.new_cache()
    with torch.inference_mode(), matvec.compiled():
        model(ids, cache=cache)  # all 8 positions filled
        keys = cache.layers[0].keys.clone()
        with pytest.raises(ShapeError, match="KV cache full: 8 \\+ 1 tokens exceed max_len=8"):
            model.step(ids[:, :1], torch.full((1, 1), 7), None, cache)
    assert torch.equal(cache.layers[0].keys, keys) and cache.layers[0].length == 8


def test_without_a_compiler_decoding_keeps_torch_compiles_step(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", "no-such-compiler")
    monkeypatch.setenv("MINITRANSFORMER_CACHE", str(tmp_path))
    with pytest.raises(RuntimeError, match="no C compiler: 'no-such-compiler' is not on PATH"):
        native_step.build()
    native_step.library.cache_clear()
    try:
        with pytest.warns(UserWarning, match="native decoding step unavailable"):
            assert native_step.library() is None
        model = bf16_gpt(pos_encoding="learned")
        reference = bf16_gpt(pos_encoding="learned").float()
        prompt = torch.randint(0, 61, (1, 6))
        with torch.no_grad(), warnings.catch_warnings(record=True) as caught, matvec.compiled():
            warnings.simplefilter("always")
            fast = generate(model, prompt, max_new_tokens=12, do_sample=False)
        assert not [w for w in caught if "native" in str(w.message)]  # said once, not at every step
        assert torch.equal(fast, generate(reference, prompt, max_new_tokens=12, do_sample=False))
    finally:
        native_step.library.cache_clear()


def test_a_build_is_cached_and_replaced_whole(tmp_path, monkeypatch):
    monkeypatch.setenv("MINITRANSFORMER_CACHE", str(tmp_path))
    first = native_step.build()
    assert first.parent == tmp_path and list(tmp_path.iterdir()) == [first]  # no scratch left behind
    stamp = first.stat().st_mtime_ns
    assert native_step.build() == first and first.stat().st_mtime_ns == stamp  # not rebuilt
    assert isinstance(ctypes.CDLL(str(first)).model_step, ctypes._CFuncPtr)


def test_a_compiler_error_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("MINITRANSFORMER_CACHE", str(tmp_path))
    bad = tmp_path / "bad.c"
    bad.write_text("this is not C\n")
    monkeypatch.setattr(native_step, "SOURCE", bad)
    with pytest.raises(RuntimeError, match="could not compile bad.c"):
        native_step.build()
    assert not any(p.suffix == ".so" for p in tmp_path.rglob("*"))
