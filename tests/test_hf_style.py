"""Code written for Hugging Face runs on our models with only the import and the model name changed.

Each snippet below is the pattern of a typical transformers tutorial. It runs twice: against transformers
itself (a tiny random GPT-2 saved to a folder, so that the snippet is proven to be Hugging Face code) and
against minitransformer with the bundled `shakespeare-char`.
"""

import json

import pytest
import torch

import minitransformer as mt

transformers = pytest.importorskip("transformers")

PIPELINE = """
from transformers import pipeline
generator = pipeline("text-generation", model=MODEL)
outputs = generator("ROMEO:", max_length=20, num_return_sequences=3, do_sample=True, top_k=50, top_p=0.95,
                    num_beams=5)
texts = [o["generated_text"] for o in outputs]
"""

GENERATE = """
from transformers import AutoModelForCausalLM, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained(MODEL)
model = AutoModelForCausalLM.from_pretrained(MODEL)
input_ids = tokenizer.encode("ROMEO:", return_tensors="pt")
output = model.generate(input_ids, max_length=20, num_beams=5, early_stopping=True)
texts = [tokenizer.decode(output[0], skip_special_tokens=True)]
"""

CALL_TOKENIZER = """
from transformers import AutoModelForCausalLM, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained(MODEL)
model = AutoModelForCausalLM.from_pretrained(MODEL)
inputs = tokenizer("ROMEO:", return_tensors="pt")
output = model.generate(**inputs, max_new_tokens=12, do_sample=True, top_k=50)
texts = tokenizer.batch_decode(output, skip_special_tokens=True)
"""

FINE_TUNE = """
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained(MODEL)
model = AutoModelForCausalLM.from_pretrained(MODEL)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
model.train()
input_ids = tokenizer.encode("ROMEO: But soft, what light through yonder window breaks?", return_tensors="pt")
losses = []
for _ in range(4):
    outputs = model(input_ids, labels=input_ids)
    outputs.loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    losses.append(outputs.loss.item())
texts = []
"""

SNIPPETS = {"pipeline": PIPELINE, "generate": GENERATE, "call tokenizer": CALL_TOKENIZER, "fine-tune": FINE_TUNE}


def gpt2_byte_chars():
    """GPT-2's vocabulary spells each byte as a printable character: itself, or one from 256 upwards."""
    printable = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)}
    stand_ins = iter(range(256, 512))
    return {b: chr(b) if b in printable else chr(next(stand_ins)) for b in range(256)}


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A tiny random GPT-2 and a byte-level tokenizer (no merges), saved as transformers saves them."""
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    byte_to_char = gpt2_byte_chars()
    vocab = {ch: i for i, ch in enumerate(byte_to_char[b] for b in range(256))} | {"<|endoftext|>": 256}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = transformers.GPT2TokenizerFast(str(folder / "vocab.json"), str(folder / "merges.txt"))
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=257, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                     bos_token_id=256, eos_token_id=256)
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    return str(folder)


def run(snippet, model_name, library="transformers"):
    code = snippet if library == "transformers" else snippet.replace("from transformers", "from minitransformer")
    scope = {"MODEL": model_name}
    torch.manual_seed(0)
    exec(code, scope)
    return scope


@pytest.mark.parametrize("name", SNIPPETS)
def test_the_snippet_is_hugging_face_code(name, hf_folder):
    scope = run(SNIPPETS[name], hf_folder)
    assert all(isinstance(t, str) for t in scope["texts"])


@pytest.mark.parametrize("name", SNIPPETS)
def test_the_same_snippet_runs_on_minitransformer(name):
    scope = run(SNIPPETS[name], "shakespeare-char", library="minitransformer")
    assert all(t.startswith("ROMEO:") for t in scope["texts"])
    if name == "fine-tune":
        assert scope["losses"][-1] < scope["losses"][0]


def test_labels_are_shifted_inside_as_in_hugging_face():
    model = mt.AutoModelForCausalLM.from_pretrained("shakespeare-char")
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    out = model(ids, labels=ids)
    torch.testing.assert_close(out.loss, mt.clm_loss(out.logits[:, :-1], ids[:, 1:]))
    assert out[0] is out.loss and out.logits.shape == (1, 5, model.config.vocab_size)
    padded = model(ids, attention_mask=torch.tensor([[1, 1, 1, 0, 0]]), labels=ids)
    torch.testing.assert_close(padded.loss, mt.clm_loss(out.logits[:, :2], ids[:, 1:3]))


def test_tokenizer_call_pads_and_reports_the_mask():
    tok = mt.AutoTokenizer.from_pretrained("shakespeare-mlm", padding_side="left")
    batch = tok(["ab", "abcd"], return_tensors="pt", padding=True)
    assert batch["input_ids"].shape == (2, 4)
    assert batch["attention_mask"].tolist() == [[0, 0, 1, 1], [1, 1, 1, 1]]
    assert batch["input_ids"][0, 0] == tok.pad_token_id
    with pytest.raises(ValueError, match="padding=True"):
        tok(["ab", "abcd"], return_tensors="pt")
    with pytest.raises(ValueError, match="return_tensors"):
        tok.encode("ab", return_tensors="np")
    no_pad = mt.AutoTokenizer.from_pretrained("shakespeare-char")
    with pytest.raises(ValueError, match="pad token"):
        no_pad(["a", "bc"], padding=True)


def test_seq2seq_and_masked_lm_families(tmp_path):
    tok = mt.AutoTokenizer.from_pretrained("dates-seq2seq")
    model = mt.AutoModelForSeq2SeqLM.from_pretrained("dates-seq2seq")
    out = model.generate(**tok("Friday, March 5, 2021", return_tensors="pt"))
    assert tok.batch_decode(out, skip_special_tokens=True) == ["2021-03-05"]
    mlm = mt.AutoModelForMaskedLM.from_pretrained("shakespeare-mlm")
    with pytest.raises(TypeError, match="fill-mask"):
        mlm.generate(torch.tensor([[1, 2]]))
    with pytest.raises(TypeError, match="AutoModelForCausalLM wraps a GPT"):
        mt.AutoModelForCausalLM.from_pretrained("shakespeare-mlm")
    inner, inner_tok = mt.load_pretrained("shakespeare-char")
    path = tmp_path / "model.safetensors"
    mt.save_checkpoint(path, inner, inner_tok)
    assert mt.AutoTokenizer.from_pretrained(path).encode("ab") == inner_tok.encode("ab")
    from_path = mt.AutoModelForCausalLM.from_pretrained(path)
    assert torch.equal(mt.generate(from_path, torch.tensor([[5, 6]]), max_new_tokens=5),
                       mt.generate(inner, torch.tensor([[5, 6]]), max_new_tokens=5))
