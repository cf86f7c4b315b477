"""Every bundled model is re-scored on held-out data and must keep the quality recorded in its model card."""

import pytest
import torch

import minitransformer as mt
from minitransformer.data import date_splits, load_text, train_val_split
from minitransformer.tools.evaluation import clm_validation_loss, exact_match, masked_accuracy_on
from minitransformer.tools.pretrained import PRETRAINED, pretrained_path


def test_bundled_files_fit_the_size_budget():
    sizes = {name: pretrained_path(name).stat().st_size for name in PRETRAINED}
    assert all(size <= 25 * 2**20 for size in sizes.values()), sizes
    assert sum(sizes.values()) <= 40 * 2**20, sizes


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="(?s)unknown pretrained model 'gpt2'.*shakespeare-char"):
        mt.load_pretrained("gpt2")


def test_shakespeare_char_validation_loss():
    model, tok = mt.load_pretrained("shakespeare-char")
    assert isinstance(model, mt.GPT) and not model.training
    _, val = train_val_split(load_text("shakespeare"))
    loss = clm_validation_loss(model, torch.tensor(tok.encode(val)))  # all 435 windows of the split
    assert loss <= 1.50, f"validation loss {loss:.3f} nats/char is above the 1.50 threshold"


def test_shakespeare_mlm_masked_accuracy():
    model, tok = mt.load_pretrained("shakespeare-mlm")
    assert isinstance(model, mt.MaskedLM)
    _, val = train_val_split(load_text("shakespeare"))
    accuracy = masked_accuracy_on(model, tok, torch.tensor(tok.encode(val)), n_batches=8)
    assert accuracy >= 0.50, f"masked-character accuracy {accuracy:.3f} is below 0.50"


def test_dates_seq2seq_exact_match_on_held_out_dates():
    model, tok = mt.load_pretrained("dates-seq2seq")
    assert isinstance(model, mt.Seq2SeqTransformer)
    _, held_out = date_splits(n_train=1, n_test=1000, seed=0)
    score = exact_match(model, tok, held_out)
    assert score >= 0.99, f"exact match {score:.3f} on 1,000 held-out dates is below 0.99"


def test_scores_ignore_dropout_and_restore_the_mode():
    model, tok = mt.load_pretrained("shakespeare-char")
    model.config.dropout = 0.5
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.5
    _, val = train_val_split(load_text("shakespeare"))
    ids = torch.tensor(tok.encode(val[:20_000]))
    in_eval = clm_validation_loss(model.eval(), ids)
    model.train()
    assert clm_validation_loss(model, ids) == in_eval  # dropout would make it higher and random
    assert model.training
