"""The fast one-token decoding step (GPT.step and the blocks' step methods) computes what GPT.forward computes."""

import itertools

import pytest
import torch

import minitransformer as mt
from minitransformer.generation import generate
from minitransformer.masks import positions_from_mask

CONFIGS = [
    dict(norm_first=norm_first, pos_encoding=pos, bias=bias, activation=act)
    for norm_first, pos, bias, act in itertools.product(
        [True, False], ["learned", "sinusoidal", "rope"], [True, False], ["gelu", "relu", "gelu_tanh"]
    )
]


def tiny_gpt(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(vocab_size=23, d_model=32, n_heads=4, n_layers=2, d_ff=48, max_len=40) | kw
    return mt.GPT(mt.TransformerConfig(**cfg)).eval()


def _perturb(model):
    """GPT's initialisation zeroes biases and sets LayerNorms to 1: make every parameter matter."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))


@pytest.mark.parametrize("kw", CONFIGS, ids=lambda kw: "-".join(str(v) for v in kw.values()))
def test_step_equals_the_model_forward_with_a_cache(kw):
    model = tiny_gpt(**kw)
    _perturb(model)
    ids = torch.randint(0, 23, (2, 12))
    with torch.inference_mode():
        ref_cache, fast_cache = model.new_cache(), model.new_cache()
        model(ids[:, :5], cache=ref_cache)
        model(ids[:, :5], cache=fast_cache)
        for t in range(5, 12):
            want = model(ids[:, t : t + 1], cache=ref_cache)[:, -1]  # (B, V)
            got = model.step(ids[:, t : t + 1], torch.full((1, 1), t), None, fast_cache)
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        for ref, fast in zip(ref_cache.layers, fast_cache.layers):
            torch.testing.assert_close(fast.keys, ref.keys)
            torch.testing.assert_close(fast.values, ref.values)


@pytest.mark.parametrize("pos", ["learned", "rope"])
def test_step_with_left_padding_equals_the_model(pos):
    model = tiny_gpt(pos_encoding=pos)
    _perturb(model)
    ids = torch.randint(0, 23, (3, 10))
    mask = torch.ones(3, 10, dtype=torch.long)
    mask[0, :3] = 0
    mask[2, :1] = 0
    positions = positions_from_mask(mask)
    with torch.inference_mode():
        ref_cache, fast_cache = model.new_cache(), model.new_cache()
        for cache in (ref_cache, fast_cache):
            model(ids[:, :4], mask[:, :4], position_ids=positions[:, :4], cache=cache)
        for t in range(4, 10):
            new, m, p = ids[:, t : t + 1], mask[:, : t + 1], positions[:, t : t + 1]
            want = model(new, m, position_ids=p, cache=ref_cache)[:, -1]
            torch.testing.assert_close(model.step(new, p, m, fast_cache), want, atol=1e-5, rtol=1e-5)


def test_generate_takes_the_fast_step_and_gets_the_tokens_of_the_modules(monkeypatch):
    model = tiny_gpt()
    _perturb(model)
    prompt = torch.randint(0, 23, (2, 4))
    calls = []
    original = mt.GPT.step
    monkeypatch.setattr(mt.GPT, "step", lambda self, *a: calls.append(1) or original(self, *a))
    fast = generate(model, prompt, max_new_tokens=12)
    assert len(calls) == 11  # every new token after the first (the prompt's pass makes the first)
    slow = generate(model, prompt, max_new_tokens=12, use_cache=False)  # the modules, every step
    assert torch.equal(fast, slow)


def test_forward_hooks_and_the_reference_path_keep_the_modules():
    model = tiny_gpt()
    assert model.new_cache().fast_step
    seen = []
    handle = model.blocks[0].register_forward_hook(lambda module, args, out: seen.append(args[0].shape))
    assert not model.new_cache().fast_step
    generate(model, torch.zeros(1, 3, dtype=torch.long), max_new_tokens=5)
    assert len(seen) == 5  # the hook saw every step: generate ran the modules
    handle.remove()
    assert not tiny_gpt(attn_impl="reference").new_cache().fast_step
    assert not model.train().new_cache().fast_step
    assert not model.next_token_logits(torch.zeros(1, 3, dtype=torch.long), cache=model.new_cache()).isnan().any()


def test_a_weight_change_between_calls_is_seen():
    """The step reads the modules' weights at every call: it never outlives them."""
    model = tiny_gpt()
    _perturb(model)
    prompt = torch.randint(0, 23, (1, 4))
    before = generate(model, prompt, max_new_tokens=10)
    with torch.no_grad():
        for block in model.blocks:
            block.self_attn.w_k.weight.mul_(-3.0)
    after = generate(model, prompt, max_new_tokens=10)
    assert torch.equal(after, generate(model, prompt, max_new_tokens=10, use_cache=False))
    assert not torch.equal(before, after)
