"""GPT.from_hf_gpt2 gives Hugging Face GPT-2's logits, on a randomly initialised model (no download)."""

import pytest
import torch

import minitransformer as mt

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def hf_model():
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=97,
        n_positions=32,
        n_embd=48,
        n_layer=3,
        n_head=4,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    return transformers.GPT2LMHeadModel(config).eval()


def test_logits_equal_hugging_face(hf_model):
    ours = mt.GPT.from_hf_gpt2(hf_model)
    ids = torch.randint(0, 97, (2, 20))
    with torch.no_grad():
        expected = hf_model(ids).logits
        got = ours(ids)
    assert (got - expected).abs().max() <= 1e-5
    assert ours.num_parameters() == hf_model.num_parameters()


def test_left_padded_batch_equals_hugging_face(hf_model):
    ours = mt.GPT.from_hf_gpt2(hf_model)
    ids = torch.randint(0, 97, (2, 10))
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, :4] = 0
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        expected = hf_model(ids, attention_mask=mask, position_ids=positions).logits
        got = ours(ids, mask, position_ids=positions)
    real = mask.bool()
    assert (got[real] - expected[real]).abs().max() <= 1e-5


def test_state_dict_and_safetensors_file(hf_model, tmp_path):
    ids = torch.randint(0, 97, (1, 12))
    with torch.no_grad():
        expected = hf_model(ids).logits
    with pytest.raises(mt.ConfigError, match="pass n_heads"):
        mt.GPT.from_hf_gpt2(hf_model.state_dict())
    from_state = mt.GPT.from_hf_gpt2(hf_model.state_dict(), n_heads=4)
    torch.testing.assert_close(from_state(ids), expected, atol=1e-5, rtol=0)
    hf_model.save_pretrained(tmp_path)  # writes model.safetensors + config.json, offline
    from_folder = mt.GPT.from_hf_gpt2(tmp_path)
    torch.testing.assert_close(from_folder(ids), expected, atol=1e-5, rtol=0)


def test_bad_sources_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no GPT-2 weights"):
        mt.GPT.from_hf_gpt2(tmp_path / "missing.safetensors")
    pickle_file = tmp_path / "pytorch_model.bin"
    pickle_file.write_bytes(b"not really")
    with pytest.raises(mt.CheckpointError, match="never loaded"):
        mt.GPT.from_hf_gpt2(pickle_file)
    with pytest.raises(mt.CheckpointError, match="not a GPT-2 state dict"):
        mt.GPT.from_hf_gpt2({"foo": torch.zeros(1)}, n_heads=1)
    with pytest.raises(TypeError, match="source must be"):
        mt.GPT.from_hf_gpt2(42)
