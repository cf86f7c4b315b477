"""Tests for minitransformer.data: corpora, toy seq2seq tasks and batching."""

import contextlib
import datetime
import re
from importlib import resources

import pytest
import torch

from minitransformer.data import (
    DATE_STYLES,
    FIRST_DATE,
    LAST_DATE,
    ascii_tokenizer,
    clm_batch,
    date_pairs,
    date_splits,
    format_date,
    load_text,
    mlm_windows,
    pad_batch,
    reversal_pairs,
    seq2seq_batch,
    seq2seq_tokenizer,
    sorting_pairs,
    train_val_split,
)
from minitransformer.errors import ShapeError

PRINTABLE_ASCII = set("\n" + "".join(chr(c) for c in range(32, 127)))


# ----------------------------------------------------------------------------- corpora


def test_shakespeare_is_bundled_and_pure_ascii():
    text = load_text("shakespeare")
    assert len(text) == 1_115_394
    assert text.startswith("First Citizen:")
    assert set(text) <= PRINTABLE_ASCII


def test_split_point_is_nanogpts():
    text = load_text()
    train, val = train_val_split(text)
    assert len(train) == int(0.9 * 1_115_394) == 1_003_854
    assert len(val) == 1_115_394 - 1_003_854
    assert train + val == text


def test_split_works_on_tensors_and_rejects_bad_fractions():
    train, val = train_val_split(torch.arange(10), val_fraction=0.3)
    assert train.tolist() == list(range(7)) and val.tolist() == [7, 8, 9]
    for bad in (0, 1, -0.1, 1.5, "0.1"):
        with pytest.raises(ValueError, match="val_fraction"):
            train_val_split("abc", val_fraction=bad)


def test_unknown_corpus_lists_known_names():
    with pytest.raises(ValueError, match=r"'python'.*'shakespeare'"):
        load_text("shakespear")


def test_python_corpus_is_ascii_large_and_splittable():
    text = load_text("python")
    assert len(text) > 200_000
    assert set(text) <= PRINTABLE_ASCII  # no tabs or \r either: the ascii tokenizer covers it all
    assert text.startswith("# ---- abc.py ----\n")
    headers = re.findall(r"^# ---- (\S+) ----$", text, flags=re.M)
    assert headers == sorted(headers) and "textwrap.py" in headers and "json/decoder.py" in headers
    train, val = train_val_split(text)
    assert len(train) == int(0.9 * len(text)) and train + val == text


def test_psf_license_ships_with_the_python_corpus():
    assets = resources.files("minitransformer") / "assets"
    assert "PYTHON SOFTWARE FOUNDATION LICENSE" in (assets / "PYTHON_LICENSE.txt").read_text()
    assert "python_stdlib.txt" in (assets / "README.md").read_text()


def test_ascii_tokenizer_round_trips_both_corpora():
    tok = ascii_tokenizer()
    assert tok.vocab_size == 96
    for name in ("shakespeare", "python"):
        sample = load_text(name)[:5000]
        assert tok.decode(tok.encode(sample)) == sample
    with_specials = ascii_tokenizer(special_tokens=("[PAD]", "[MASK]"))
    assert with_specials.vocab_size == 98 and with_specials.mask_token_id is not None


# ----------------------------------------------------------------------------- seq2seq tasks


def test_date_styles_known_answers():
    day = datetime.date(2021, 3, 5)
    written = {style: format_date(day, style) for style in DATE_STYLES}
    assert written == {
        "month_day_year": "March 5, 2021",
        "mon_day_year": "Mar 5, 2021",
        "day_month_year": "5 March 2021",
        "day_mon_year": "5 Mar 2021",
        "weekday_month_day_year": "Friday, March 5, 2021",
        "wkd_day_mon_year": "Fri, 5 Mar 2021",
        "year_month_day": "2021 March 5",
    }
    assert format_date(FIRST_DATE, "weekday_month_day_year", lowercase=True) == "monday, january 1, 1900"
    with pytest.raises(ValueError, match="style"):
        format_date(day, "05/03/2021")


@pytest.mark.parametrize("style", list(DATE_STYLES))
def test_every_style_parses_back_with_its_format(style):
    days = [FIRST_DATE, LAST_DATE] + [FIRST_DATE + datetime.timedelta(d) for d in range(0, 73049, 97)]
    for day in days:
        for lowercase in (False, True):
            text = format_date(day, style, lowercase=lowercase)
            assert datetime.datetime.strptime(text, DATE_STYLES[style]).date() == day, text


def _parses(src):
    """Every date that any style's format reads from src."""
    found = set()
    for fmt in DATE_STYLES.values():
        with contextlib.suppress(ValueError):  # this style does not fit src
            found.add(datetime.datetime.strptime(src, fmt).date())
    return found


def test_date_pairs_mean_exactly_their_target():
    pairs = date_pairs(3000, seed=1)
    for src, tgt in pairs:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", tgt)
        assert _parses(src) == {datetime.date.fromisoformat(tgt)}, (src, tgt)
    years = [int(tgt[:4]) for _, tgt in pairs]
    assert min(years) < 1905 and max(years) > 2094 and all(1900 <= y <= 2099 for y in years)
    assert any(src.islower() for src, _ in pairs) and any(not src.islower() for src, _ in pairs)
    lengths = {len(src) for src, _ in pairs}
    assert min(lengths) < 12 < max(lengths)  # several styles appear, short and long


def test_date_pairs_are_deterministic():
    assert date_pairs(200, seed=3) == date_pairs(200, seed=3)
    assert date_pairs(200, seed=3) != date_pairs(200, seed=4)


def test_date_splits_hold_out_dates():
    train, test = date_splits(20_000, 1000, seed=0)
    assert len(train) == 20_000 and len(test) == 1000
    test_dates = {tgt for _, tgt in test}
    assert len(test_dates) == 1000  # distinct held-out dates
    assert test_dates.isdisjoint(tgt for _, tgt in train)
    # The held-out set depends only on (n_test, seed), so scores always refer to the same dates.
    assert date_splits(10, 1000, seed=0)[1] == test
    assert date_splits(10, 1000, seed=1)[1] != test
    with pytest.raises(ValueError, match="n_test"):
        date_splits(10, 80_000)


def test_reversal_and_sorting_pairs():
    for make, expected in (
        (reversal_pairs, lambda s: s[::-1]),
        (sorting_pairs, lambda s: "".join(sorted(s))),
    ):
        pairs = make(500, seed=2, min_len=2, max_len=5, alphabet="xyz")
        assert all(tgt == expected(src) for src, tgt in pairs)
        assert {len(src) for src, _ in pairs} == {2, 3, 4, 5}
        assert set("".join(src for src, _ in pairs)) == set("xyz")
        assert make(50, seed=2) == make(50, seed=2) != make(50, seed=3)
    assert reversal_pairs(1, seed=0, min_len=4, max_len=4)[0][0] != "aaaa"  # really random
    with pytest.raises(ValueError, match="min_len"):
        reversal_pairs(3, min_len=5, max_len=2)
    with pytest.raises(ValueError, match="alphabet"):
        sorting_pairs(3, alphabet="")
    with pytest.raises(ValueError, match="n must"):
        sorting_pairs(-1)


def test_seq2seq_tokenizer_covers_every_task():
    tok = seq2seq_tokenizer()
    assert tok.special_token_ids == frozenset({0, 1, 2, 3})
    pairs = date_pairs(2000) + reversal_pairs(200) + sorting_pairs(200) + date_splits(100, 100)[0]
    text = "".join(src + tgt for src, tgt in pairs)
    ids = tok.encode(text)
    assert tok.unk_token_id not in ids and tok.decode(ids) == text


# ----------------------------------------------------------------------------- batching


def test_clm_batch_windows_are_shifted_real_slices():
    data = torch.randperm(1000)  # distinct values: each window's start can be located
    x, y = clm_batch(data, batch_size=16, context=8, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (16, 8) and x.dtype == y.dtype == torch.long
    assert torch.equal(y[:, :-1], x[:, 1:])
    for row_x, row_y in zip(x, y):
        start = int((data == row_x[0]).nonzero())
        assert torch.equal(row_x, data[start : start + 8])
        assert torch.equal(row_y, data[start + 1 : start + 9])


def test_clm_batch_is_reproducible_and_uses_every_start():
    data = torch.arange(20)
    a = clm_batch(data, 64, 5, generator=torch.Generator().manual_seed(7))
    b = clm_batch(data, 64, 5, generator=torch.Generator().manual_seed(7))
    c = clm_batch(data, 64, 5, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], c[0])
    starts = set(a[0][:, 0].tolist()) | set(c[0][:, 0].tolist())
    assert starts == set(range(15))  # 20 - (5 + 1) + 1 possible starts, the last one included


def test_clm_batch_shortest_data_and_errors():
    x, y = clm_batch([3, 1, 4, 1, 5], batch_size=2, context=4)
    assert x.tolist() == [[3, 1, 4, 1]] * 2 and y.tolist() == [[1, 4, 1, 5]] * 2
    with pytest.raises(ValueError, match="context=5"):
        clm_batch(torch.arange(5), 2, 5)
    with pytest.raises(ShapeError, match="1-D"):
        clm_batch(torch.zeros(4, 4, dtype=torch.long), 2, 2)
    with pytest.raises(TypeError, match="integer"):
        clm_batch(torch.rand(50), 2, 2)
    with pytest.raises(ValueError, match="batch_size"):
        clm_batch(torch.arange(50), 0, 2)


def test_mlm_windows_are_real_slices():
    data = torch.arange(100, 130)
    w = mlm_windows(data, 32, 30, generator=torch.Generator().manual_seed(0))
    assert w.shape == (32, 30) and torch.equal(w, data.expand(32, 30))  # only one window fits
    w = mlm_windows(data, 8, 6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(w - w[:, :1], torch.arange(6).expand(8, 6))
    with pytest.raises(ValueError, match="too short"):
        mlm_windows(data, 2, 31)


def test_pad_batch_right_and_left():
    seqs = [[5, 6, 7], [8], []]
    ids, mask = pad_batch(seqs, pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    ids, mask = pad_batch(seqs, pad_id=9, side="left")
    assert ids.tolist() == [[5, 6, 7], [9, 9, 8], [9, 9, 9]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1], [0, 0, 0]]
    assert ids.dtype == mask.dtype == torch.long
    with pytest.raises(ValueError, match="side"):
        pad_batch(seqs, 0, side="middle")
    with pytest.raises(ValueError, match="sequences"):
        pad_batch([], 0)


def test_seq2seq_batch_teacher_forcing_layout():
    tok = seq2seq_tokenizer()
    batch = seq2seq_batch([("abc", "cba"), ("hello", "olleh!")], tok)
    assert set(batch) == {"src_ids", "src_mask", "tgt_in", "tgt_out"}
    assert batch["src_ids"].shape == batch["src_mask"].shape == (2, 5)
    assert batch["tgt_in"].shape == batch["tgt_out"].shape == (2, 7)
    assert batch["src_mask"].sum(1).tolist() == [3, 5]
    assert batch["src_ids"][0, 3:].tolist() == [tok.pad_token_id] * 2
    tgt_in, tgt_out = batch["tgt_in"], batch["tgt_out"]
    assert tgt_in[:, 0].tolist() == [tok.bos_token_id] * 2
    assert tgt_in[0].tolist() == [tok.bos_token_id, *tok.encode("cba")] + [tok.pad_token_id] * 3
    assert tgt_out[0].tolist() == [*tok.encode("cba"), tok.eos_token_id, -100, -100, -100]
    # "!" is not in the tokenizer and becomes [UNK]; the last row has no padding at all.
    assert tgt_out[1].tolist() == [*tok.encode("olleh"), tok.unk_token_id, tok.eos_token_id]


def test_seq2seq_batch_needs_bos_and_eos():
    with pytest.raises(ValueError, match="bos_token_id"):
        seq2seq_batch([("a", "b")], ascii_tokenizer(special_tokens=("[PAD]",)))
