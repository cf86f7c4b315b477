"""compiled_block.py: a block's one-token step as one compiled function computes what the eager step computes."""

import pytest
import torch

import minitransformer as mt
from minitransformer import compiled_block, matvec
from minitransformer.generation import generate


def bf16_gpt(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(vocab_size=61, d_model=64, n_heads=4, n_layers=2, d_ff=96, max_len=48) | kw
    model = mt.GPT(mt.TransformerConfig(**cfg)).eval()
    with torch.no_grad():  # GPT's initialisation zeroes biases and sets LayerNorms to 1: make them matter
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.to(torch.bfloat16)


def steps(model, ids, mask, compiled: bool):
    """Logits (B, V) of each one-token step after a 5-token prompt, and the run's caches."""
    cache = model.new_cache()
    out = []
    with torch.inference_mode(), matvec.compiled(compiled):
        model(ids[:, :5], mask[:, :5], cache=cache)
        for t in range(5, ids.shape[1]):
            out.append(model.step(ids[:, t : t + 1], torch.full((1, 1), t), mask[:, : t + 1], cache))
    return torch.stack(out), cache


@pytest.mark.parametrize("kw, batch", [
    (dict(norm_first=True, bias=True, activation="gelu_tanh", pos_encoding="learned"), 1),
    (dict(norm_first=False, bias=False, activation="relu", pos_encoding="rope"), 1),
    (dict(norm_first=True, bias=True, activation="gelu", pos_encoding="rope"), 3),  # several rows: torch's kernel
], ids=["pre-LN-learned", "post-LN-rope-no-bias", "batch-3"])
def test_compiled_step_equals_the_eager_bfloat16_step(kw, batch):
    model = bf16_gpt(**kw)
    ids = torch.randint(0, 61, (batch, 14))
    mask = torch.ones(batch, 14, dtype=torch.long)
    mask[-1, :2] = 0  # a padded row: the mask reaches the compiled attention
    want, eager_cache = steps(model, ids, mask, compiled=False)
    got, cache = steps(model, ids, mask, compiled=True)
    assert all(isinstance(w, compiled_block.Block) for w in cache[0]._step_weights.values())
    # bfloat16 rounds each stored number to 3 significant digits; the compiled sums run in float32
    torch.testing.assert_close(got.float(), want.float(), atol=0.08, rtol=0.03)
    for fast, eager in zip(cache.layers, eager_cache.layers):
        torch.testing.assert_close(fast.keys.float(), eager.keys.float(), atol=0.05, rtol=0.03)
        torch.testing.assert_close(fast.values.float(), eager.values.float(), atol=0.05, rtol=0.03)


def test_compiled_block_only_for_bfloat16_within_compiled():
    bf16, fp32 = bf16_gpt().blocks[0], bf16_gpt().float().blocks[0]
    with matvec.compiled():
        assert isinstance(bf16.step_weights(), compiled_block.Block)
        assert not isinstance(fp32.step_weights(), compiled_block.Block)
    assert not isinstance(bf16.step_weights(), compiled_block.Block)


@pytest.mark.parametrize("native", [False, True], ids=["torch.compile", "native_step.c"])
def test_compiled_greedy_text_equals_float32s(native):
    """Sums in float32 keep the compiled bfloat16 step near float32: the same greedy text here."""
    model = bf16_gpt(seed=3, n_layers=3, pos_encoding="learned")
    reference = bf16_gpt(seed=3, n_layers=3, pos_encoding="learned").float()
    prompt = torch.randint(0, 61, (1, 6))
    with torch.no_grad():
        with matvec.compiled(native=native):
            fast = generate(model, prompt, max_new_tokens=30, do_sample=False)
        slow = generate(reference, prompt, max_new_tokens=30, do_sample=False)
    assert torch.equal(fast, slow)


def test_one_compiled_block_serves_models_of_every_size():
    """torch.compile stops compiling after 8 versions of a function and runs it eagerly: three model
    widths and head counts in one process must not cost a version each."""
    from torch._dynamo.utils import counters

    before = counters["stats"]["unique_graphs"]
    for d_model, n_heads in [(32, 2), (64, 4), (96, 6)]:
        model = bf16_gpt(d_model=d_model, n_heads=n_heads, d_ff=2 * d_model)
        with torch.no_grad(), matvec.compiled():
            generate(model, torch.randint(0, 61, (1, 5)), max_new_tokens=4, do_sample=False)
    assert counters["stats"]["unique_graphs"] - before <= 4  # the block once or twice, the head's loop
