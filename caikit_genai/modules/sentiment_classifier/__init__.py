"""SentimentClassifier: served in module.py, trained by training.py with the parameters of
recipe.py; distillation from a teacher in distillation.py."""

from .distillation import UNLABELLED, distillation_loss
from .module import SentimentClassifier
from .recipe import SentimentRecipe
from .training import length_grouped_batches, load_hf_classifier, stratified_split

# The public path of the class (`caikit_genai.modules.sentiment_classifier.SentimentClassifier`): caikit's train entry
# point matches `--module` against `__module__`, and saved config.yml files record it.
SentimentClassifier.__module__ = __name__
