"""CharTextGenerator: a character-level LSTM/GRU served as caikit-nlp text generation (module.py),
its train parameters (recipe.py) and its trainer (training.py)."""

from .module import CharTextGenerator
from .recipe import CharRecipe

__all__ = ["CharRecipe", "CharTextGenerator"]

# The public path of the class (`caikit_genai.modules.char_text_generator.CharTextGenerator`): caikit's train entry
# point matches `--module` against `__module__`, and saved config.yml files record it.
CharTextGenerator.__module__ = __name__
