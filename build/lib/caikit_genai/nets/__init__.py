"""Plain torch networks, sized by parameters; no Caikit imports here."""

from .char_rnn import CharRNN
