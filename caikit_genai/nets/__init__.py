"""Plain torch networks, sized by parameters; no Caikit imports here."""

from .char_rnn import CharRNN
from .dcgan import Discriminator, Generator
from .image_classifier import ImageClassifier
