"""The from-scratch RNN and LSTM against torch.nn.RNN / torch.nn.LSTM: outputs, final states and gradients."""

import pytest
import torch
from torch import nn

from minitransformer.errors import ConfigError, ShapeError
from minitransformer.objectives import clm_loss
from minitransformer.recurrent import LSTM, RNN, CharLSTM, LSTMCell, RNNCell

SIZES = [(1, 1, 1, 1), (3, 4, 2, 5), (8, 16, 3, 7), (5, 2, 4, 12)]  # (I, H, B, T)
TORCH_NAMES = {"cell.w_ih.weight": "weight_ih_l0", "cell.w_ih.bias": "bias_ih_l0",
               "cell.w_hh.weight": "weight_hh_l0", "cell.w_hh.bias": "bias_hh_l0"}


def pair(kind, input_size, hidden_size):
    """A random float64 torch layer (batch_first) and our copy of it."""
    torch_cls, ours_cls = {"rnn": (nn.RNN, RNN), "lstm": (nn.LSTM, LSTM)}[kind]
    ref = torch_cls(input_size, hidden_size, batch_first=True).double()
    return ref, ours_cls.from_torch(ref)


def initial_state(kind, batch, hidden, given):
    """(ours, torch's) initial state: None for both, or random tensors (torch adds a layer axis)."""
    if not given:
        return None, None
    if kind == "rnn":
        h0 = torch.randn(batch, hidden, dtype=torch.float64)
        return h0, h0[None]
    h0, c0 = torch.randn(2, batch, hidden, dtype=torch.float64)
    return (h0, c0), (h0[None], c0[None])


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("sizes", SIZES)
def test_outputs_and_final_state_equal_torch(kind, sizes, with_state):
    I, H, B, T = sizes
    ref, ours = pair(kind, I, H)
    x = torch.randn(B, T, I, dtype=torch.float64)
    ours_state, ref_state = initial_state(kind, B, H, with_state)
    out, final = ours(x, ours_state)
    ref_out, ref_final = ref(x, ref_state)
    torch.testing.assert_close(out, ref_out)
    if kind == "rnn":
        torch.testing.assert_close(final, ref_final[0])  # torch's h_n is (num_layers=1, B, H)
    else:
        torch.testing.assert_close(final[0], ref_final[0][0])
        torch.testing.assert_close(final[1], ref_final[1][0])
    assert out.shape == (B, T, H)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
@pytest.mark.parametrize("sizes", SIZES)
def test_gradients_equal_torch(kind, sizes):
    I, H, B, T = sizes
    ref, ours = pair(kind, I, H)
    x = torch.randn(B, T, I, dtype=torch.float64)
    weights = torch.randn(B, T, H, dtype=torch.float64)  # a loss that reads every output
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours_state, ref_state = initial_state(kind, B, H, True)
    ours_leaves = [ours_state] if kind == "rnn" else list(ours_state)
    ref_leaves = [ref_state] if kind == "rnn" else list(ref_state)
    for t in ours_leaves + ref_leaves:
        t.requires_grad_()
    out, final = ours(x_ours, ours_state)
    ref_out, ref_final = ref(x_ref, ref_state)
    last = final if kind == "rnn" else final[1]  # the LSTM's cell state gets a gradient of its own
    ref_last = ref_final[0] if kind == "rnn" else ref_final[1][0]
    ((out * weights).sum() + last.square().sum()).backward()
    ((ref_out * weights).sum() + ref_last.square().sum()).backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad)
    for a, b in zip(ours_leaves, ref_leaves):
        torch.testing.assert_close(a.grad, b.grad[0])
    params = dict(ours.named_parameters())
    for name, torch_name in TORCH_NAMES.items():
        torch.testing.assert_close(params[name].grad, getattr(ref, torch_name).grad, msg=name)


def test_cells_equal_torch_cells():
    x, h, c = torch.randn(3, 4, 5, dtype=torch.float64)  # I = H = 5
    rnn_ref, lstm_ref = nn.RNNCell(5, 5).double(), nn.LSTMCell(5, 5).double()
    rnn, lstm = RNNCell(5, 5).double(), LSTMCell(5, 5).double()
    for ours, ref in ((rnn, rnn_ref), (lstm, lstm_ref)):
        ours.load_state_dict({"w_ih.weight": ref.weight_ih, "w_ih.bias": ref.bias_ih,
                              "w_hh.weight": ref.weight_hh, "w_hh.bias": ref.bias_hh})
    torch.testing.assert_close(rnn(x, h), rnn_ref(x, h))
    for got, expected in zip(lstm(x, (h, c)), lstm_ref(x, (h, c))):
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_initialisation_matches_torch(kind):
    """Same parameter count, and every value inside torch's bound ±1/sqrt(H)."""
    torch_cls, ours_cls = {"rnn": (nn.RNN, RNN), "lstm": (nn.LSTM, LSTM)}[kind]
    ref, ours = torch_cls(6, 32), ours_cls(6, 32)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    values = torch.cat([p.flatten() for p in ours.parameters()])
    assert values.abs().max() <= 32**-0.5 and values.std() > 0.5 * 32**-0.5 / 3**0.5


def test_char_lstm_is_embedding_lstm_linear():
    model = CharLSTM(vocab_size=11, d_embed=6, hidden_size=9).double()
    ref = nn.LSTM(6, 9, batch_first=True).double()
    model.lstm = LSTM.from_torch(ref)
    ids = torch.randint(0, 11, (3, 8))
    expected = model.lm_head(ref(model.embed(ids))[0])
    logits, (h, c) = model(ids, return_state=True)
    torch.testing.assert_close(logits, expected)
    # continuing from the returned state equals reading the whole sequence at once
    longer = torch.cat([ids, torch.randint(0, 11, (3, 4))], dim=1)
    torch.testing.assert_close(model(longer[:, 8:], state=(h, c)), model(longer)[:, 8:])


def test_char_lstm_fast_path_equals_reference():
    fast = CharLSTM(vocab_size=11, d_embed=6, hidden_size=9, impl="fast").double()
    reference = CharLSTM(vocab_size=11, d_embed=6, hidden_size=9).double()
    reference.load_state_dict({k: v for k, v in fast.state_dict().items() if not k.startswith("lstm.")}, strict=False)
    reference.lstm = LSTM.from_torch(fast.lstm)
    ids, more = torch.randint(0, 11, (3, 8)), torch.randint(0, 11, (3, 4))
    (a, state_a), (b, state_b) = fast(ids, return_state=True), reference(ids, return_state=True)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(fast(more, state=state_a), reference(more, state=state_b))
    clm_loss(a, ids).backward()
    clm_loss(b, ids).backward()
    torch.testing.assert_close(fast.embed.weight.grad, reference.embed.weight.grad)
    torch.testing.assert_close(fast.lstm.weight_hh_l0.grad, reference.lstm.cell.w_hh.weight.grad)


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_char_lstm_trains_with_clm_loss_and_is_causal(impl):
    model = CharLSTM(vocab_size=7, d_embed=4, hidden_size=8, impl=impl)
    ids = torch.randint(0, 7, (2, 10))
    loss = clm_loss(model(ids[:, :-1]), ids[:, 1:])
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    edited = ids.clone()
    edited[:, 6] = (edited[:, 6] + 1) % 7
    before, after = model(ids), model(edited)
    torch.testing.assert_close(before[:, :6], after[:, :6])  # the past never reads the future
    assert not torch.allclose(before[:, 6:], after[:, 6:])


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ConfigError, match="hidden_size must be a positive integer, got 0"):
        LSTM(3, 0)
    with pytest.raises(ConfigError, match="input_size must be a positive integer, got 2.5"):
        RNN(2.5, 4)
    with pytest.raises(ShapeError, match=r"x must have shape \(batch, seq_len, input_size=3\), got a tensor of shape \(2, 3\)"):
        RNN(3, 4)(torch.randn(2, 3))
    with pytest.raises(ShapeError, match="input_size=3"):
        LSTM(3, 4)(torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match="num_layers=2"):
        LSTM.from_torch(nn.LSTM(3, 4, num_layers=2))
    with pytest.raises(TypeError, match="expects a torch.nn.RNN"):
        RNN.from_torch(nn.LSTM(3, 4))
    with pytest.raises(ValueError, match="nonlinearity='relu'"):
        RNN.from_torch(nn.RNN(3, 4, nonlinearity="relu"))
    with pytest.raises(ShapeError, match="input_ids must be a"):
        CharLSTM(5)(torch.randn(2, 3))
    with pytest.raises(ConfigError, match=r"impl must be one of \('reference', 'fast'\), got 'cuda'"):
        CharLSTM(5, impl="cuda")
    with pytest.raises(ConfigError, match="hidden_size must be a positive integer, got 0"):
        CharLSTM(5, hidden_size=0, impl="fast")
