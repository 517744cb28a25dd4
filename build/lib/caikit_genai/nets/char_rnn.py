"""A character-level recurrent language model (karpathy's char-rnn, in torch).

embedding -> LSTM or GRU (n layers, dropout between them) -> dropout -> linear over the
vocabulary. `forward` reads whole sequences (training, priming with a prompt); `step` reads one
character per sequence and carries the recurrent state, so generating N characters costs N
steps, never a re-read of the prefix.
"""

from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

# An LSTM's state is (h, c); a GRU's is h. Each is [num_layers, batch, hidden_size].
State = Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


class CharRNN(nn.Module):
    """Next-character logits from an embedding, a stacked LSTM/GRU and a linear read-out."""

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int = 512,
        num_layers: int = 2,
        cell: str = "lstm",
        embedding_dim: Optional[int] = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.cell = cell
        self.embedding_dim = embedding_dim or hidden_size
        self.dropout_rate = dropout
        self.embedding = nn.Embedding(vocab_size, self.embedding_dim)
        self.rnn = CELLS[cell](
            self.embedding_dim,
            hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def hyperparameters(self) -> dict:
        """What the constructor needs to rebuild this network (saved beside the weights)."""
        return {
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "cell": self.cell,
            "embedding_dim": self.embedding_dim,
            "dropout": self.dropout_rate,
        }

    def forward(self, char_ids: torch.Tensor, state: Optional[State] = None) -> Tuple[torch.Tensor, State]:
        """Logits [batch, time, vocab] for ids [batch, time], and the state after the last one."""
        outputs, state = self.rnn(self.embedding(char_ids), state)
        return self.head(self.dropout(outputs)), state

    def step(self, char_ids: torch.Tensor, state: Optional[State] = None) -> Tuple[torch.Tensor, State]:
        """Read one character per sequence (ids [batch]): logits [batch, vocab] and the new state.

        The cell equations are written out (the same weights and gate order as nn.LSTM/nn.GRU):
        on CPU, the fused oneDNN RNN kernel costs ~10 ms per call for a sequence of one, the
        plain matrix-vector products ~1 ms for a 2x512 LSTM. Dropout is skipped (generation).
        """
        batch = char_ids.shape[0]
        x = self.embedding(char_ids)
        if state is None:
            zeros = x.new_zeros(self.num_layers, batch, self.hidden_size)
            state = (zeros, zeros.clone()) if self.cell == "lstm" else zeros
        hidden = state[0] if self.cell == "lstm" else state
        new_hidden, new_cells = [], []
        for layer in range(self.num_layers):
            weights = [getattr(self.rnn, f"{name}_l{layer}") for name in ("weight_ih", "bias_ih", "weight_hh", "bias_hh")]
            from_input = F.linear(x, weights[0], weights[1])
            from_hidden = F.linear(hidden[layer], weights[2], weights[3])
            if self.cell == "lstm":
                in_gate, forget_gate, candidate, out_gate = (from_input + from_hidden).chunk(4, dim=-1)
                cell = torch.sigmoid(forget_gate) * state[1][layer] + torch.sigmoid(in_gate) * torch.tanh(candidate)
                x = torch.sigmoid(out_gate) * torch.tanh(cell)
                new_cells.append(cell)
            else:
                input_r, input_z, input_n = from_input.chunk(3, dim=-1)
                hidden_r, hidden_z, hidden_n = from_hidden.chunk(3, dim=-1)
                reset, update = torch.sigmoid(input_r + hidden_r), torch.sigmoid(input_z + hidden_z)
                candidate = torch.tanh(input_n + reset * hidden_n)
                x = (1 - update) * candidate + update * hidden[layer]
            new_hidden.append(x)
        new_state = torch.stack(new_hidden)
        if self.cell == "lstm":
            new_state = (new_state, torch.stack(new_cells))
        return self.head(x), new_state


def detach_state(state: Optional[State]) -> Optional[State]:
    """Cut the graph at a chunk boundary (truncated backpropagation through time)."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(part.detach() for part in state)
    return state.detach()
