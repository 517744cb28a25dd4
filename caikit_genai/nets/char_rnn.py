"""A character-level recurrent language model (karpathy's char-rnn, in torch).

embedding -> LSTM or GRU (n layers, dropout between them) -> dropout -> linear over the
vocabulary. `forward` reads whole sequences (training, priming with a prompt); `step` reads one
character per sequence and carries the recurrent state, so generating N characters costs N
steps, never a re-read of the prefix.
"""

from typing import Optional, Tuple, Union

import torch
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
        """Read one character per sequence (ids [batch]): logits [batch, vocab] and the new state."""
        logits, state = self.forward(char_ids.unsqueeze(1), state)
        return logits[:, -1], state


def detach_state(state: Optional[State]) -> Optional[State]:
    """Cut the graph at a chunk boundary (truncated backpropagation through time)."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(part.detach() for part in state)
    return state.detach()
