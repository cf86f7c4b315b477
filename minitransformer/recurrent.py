"""Recurrent networks from scratch: the tanh RNN, the LSTM, and a character-level LSTM language model.

Before the Transformer, language models read text one token at a time, carrying a state vector
from each step to the next (Elman 1990; Bengio et al. 2003 used a feed-forward net over a fixed
window). The two cells here are written as their equations, with the weights laid out exactly as
in torch.nn.RNN / torch.nn.LSTM, so that `from_torch` copies a trained PyTorch layer in and the
tests can check every output, state and gradient against PyTorch.

    RNN  (Elman):   h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
    LSTM (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000):
        i, f, g, o = σ(·), σ(·), tanh(·), σ(·)  of  W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
        c_t = f ⊙ c_{t-1} + i ⊙ g          the cell: an additive path through time
        h_t = o ⊙ tanh(c_t)

The layers loop over time in Python: step t needs h_{t-1}, so the T steps cannot run in
parallel. That loop, and the product of T Jacobians it puts in every gradient, is what
self-attention removes (notebook 01 measures both). Letters: B batch, T time, I input size,
H hidden size, V vocabulary, E embedding size.
"""

from __future__ import annotations

import torch
from torch import nn

from .checks import require_choice, require_int
from .errors import ShapeError, describe


class RNNCell(nn.Module):
    """One step of the tanh RNN: (x_t (B, I), h_{t-1} (B, H)) -> h_t (B, H)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        _check_sizes(input_size, hidden_size)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.w_ih = nn.Linear(input_size, hidden_size)  # W_ih x + b_ih
        self.w_hh = nn.Linear(hidden_size, hidden_size)  # W_hh h + b_hh
        _init_like_torch(self)

    def forward(self, x, h):
        return torch.tanh(self.w_ih(x) + self.w_hh(h))  # (B, H)


class LSTMCell(nn.Module):
    """One LSTM step: (x_t (B, I), (h_{t-1}, c_{t-1}) each (B, H)) -> (h_t, c_t).

    The four gates come out of one matrix product, stacked as [i; f; g; o] (torch's order).
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        _check_sizes(input_size, hidden_size)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.w_ih = nn.Linear(input_size, 4 * hidden_size)  # rows [W_ii; W_if; W_ig; W_io]
        self.w_hh = nn.Linear(hidden_size, 4 * hidden_size)  # rows [W_hi; W_hf; W_hg; W_ho]
        _init_like_torch(self)

    def forward(self, x, state):
        h, c = state  # (B, H), (B, H)
        gates = self.w_ih(x) + self.w_hh(h)  # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=-1)  # each (B, H)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c = f * c + i * g  # forget some of the old cell, write some of the candidate g
        h = o * torch.tanh(c)  # expose a gated view of the cell
        return h, c


class RNN(nn.Module):
    """A tanh RNN over a sequence, batch first: x (B, T, I), h0 (B, H) or None -> (outputs (B, T, H), h_T (B, H))."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.cell = RNNCell(input_size, hidden_size)

    def forward(self, x, h0=None):
        _check_sequence(x, self.cell.input_size)
        h = _zeros(x, self.cell.hidden_size) if h0 is None else h0
        outputs = []
        for t in range(x.shape[1]):  # sequential: step t needs h from step t - 1
            h = self.cell(x[:, t], h)
            outputs.append(h)
        return torch.stack(outputs, dim=1), h  # (B, T, H), (B, H)

    @classmethod
    def from_torch(cls, module: nn.RNN) -> RNN:
        """A copy of a single-layer, unidirectional, tanh torch.nn.RNN with biases."""
        _check_torch_layer(module, nn.RNN)
        if module.nonlinearity != "tanh":
            raise ValueError(f"from_torch copies a tanh RNN, got nonlinearity={module.nonlinearity!r}")
        ours = cls(module.input_size, module.hidden_size).to(module.weight_ih_l0)  # same dtype and device
        _copy_weights(ours.cell, module)
        return ours


class LSTM(nn.Module):
    """An LSTM over a sequence, batch first: x (B, T, I), state (h0, c0) or None -> (outputs (B, T, H), (h_T, c_T))."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.cell = LSTMCell(input_size, hidden_size)

    def forward(self, x, state=None):
        _check_sequence(x, self.cell.input_size)
        zeros = _zeros(x, self.cell.hidden_size)
        h, c = (zeros, zeros) if state is None else state
        outputs = []
        for t in range(x.shape[1]):  # sequential, as in the RNN
            h, c = self.cell(x[:, t], (h, c))
            outputs.append(h)
        return torch.stack(outputs, dim=1), (h, c)  # (B, T, H), ((B, H), (B, H))

    @classmethod
    def from_torch(cls, module: nn.LSTM) -> LSTM:
        """A copy of a single-layer, unidirectional torch.nn.LSTM with biases (and no projection)."""
        _check_torch_layer(module, nn.LSTM)
        if module.proj_size:
            raise ValueError(f"from_torch copies an LSTM without projection, got proj_size={module.proj_size}")
        ours = cls(module.input_size, module.hidden_size).to(module.weight_ih_l0)  # same dtype and device
        _copy_weights(ours.cell, module)
        return ours


class CharLSTM(nn.Module):
    """A recurrent language model: ids (B, T) -> embedding (B, T, E) -> LSTM (B, T, H) -> logits (B, T, V).

    Position t has read tokens 0..t, so its logits predict token t + 1, the same contract as GPT:
    `clm_loss(model(x), y)` with x, y from `data.clm_batch`.
    impl="reference" runs the LSTM above, one Python step per token; impl="fast" runs torch.nn.LSTM,
    the same equations and weight layout with the loop over time in C++ (tests keep the two equal).
    """

    def __init__(self, vocab_size: int, d_embed: int = 64, hidden_size: int = 128, impl: str = "reference"):
        super().__init__()
        require_int("vocab_size", vocab_size, minimum=1)
        require_int("d_embed", d_embed, minimum=1)
        require_choice("impl", impl, ("reference", "fast"))
        self.vocab_size, self.impl = vocab_size, impl
        self.embed = nn.Embedding(vocab_size, d_embed)
        if impl == "reference":
            self.lstm = LSTM(d_embed, hidden_size)
        else:
            _check_sizes(d_embed, hidden_size)
            self.lstm = nn.LSTM(d_embed, hidden_size, batch_first=True)
        self.lm_head = nn.Linear(hidden_size, vocab_size)

    def forward(self, input_ids, state=None, return_state: bool = False):
        """input_ids: (B, T) -> logits (B, T, V); with return_state=True, (logits, (h_T, c_T)) to continue from."""
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.is_floating_point():
            raise ShapeError(f"input_ids must be a (batch, seq_len) tensor of token ids, got {describe(input_ids)}")
        x = self.embed(input_ids)  # (B, T, E)
        if self.impl == "reference":
            outputs, state = self.lstm(x, state)  # (B, T, H)
        else:  # torch's states carry a leading layer axis: (1, B, H)
            outputs, (h, c) = self.lstm(x, None if state is None else (state[0][None], state[1][None]))
            state = (h[0], c[0])
        logits = self.lm_head(outputs)  # (B, T, V)
        return (logits, state) if return_state else logits


# ----------------------------------------------------------------------------- helpers


def _init_like_torch(cell: nn.Module) -> None:
    """torch.nn.RNN/LSTM's initialisation: every weight and bias uniform in ±1/sqrt(H)."""
    bound = cell.hidden_size**-0.5
    for p in cell.parameters():
        nn.init.uniform_(p, -bound, bound)


def _zeros(x, hidden_size):
    return x.new_zeros(x.shape[0], hidden_size)  # (B, H)


def _check_sizes(input_size, hidden_size):
    require_int("input_size", input_size, minimum=1)
    require_int("hidden_size", hidden_size, minimum=1)


def _check_sequence(x, input_size):
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != input_size:
        raise ShapeError(f"x must have shape (batch, seq_len, input_size={input_size}), got {describe(x)}")


def _check_torch_layer(module, kind):
    if not isinstance(module, kind):
        raise TypeError(f"from_torch expects a torch.nn.{kind.__name__}, got {describe(module)}")
    if module.num_layers != 1 or module.bidirectional or not module.bias:
        raise ValueError(
            "from_torch copies one layer, one direction, with biases; got "
            f"num_layers={module.num_layers}, bidirectional={module.bidirectional}, bias={module.bias}"
        )


@torch.no_grad()
def _copy_weights(cell, module):
    """torch keeps layer 0's weights as weight_ih_l0 (H or 4H, I), weight_hh_l0, bias_ih_l0, bias_hh_l0."""
    cell.w_ih.weight.copy_(module.weight_ih_l0)
    cell.w_ih.bias.copy_(module.bias_ih_l0)
    cell.w_hh.weight.copy_(module.weight_hh_l0)
    cell.w_hh.bias.copy_(module.bias_hh_l0)
