"""The Translator module: serving (module.py, decoding.py), its train parameters (recipe.py) and
its trainer (training.py, new_model.py)."""

from .decoding import Piece
from .module import Translator
from .recipe import TranslatorRecipe

__all__ = ["Piece", "Translator", "TranslatorRecipe"]

# The public path of the class (`caikit_genai.modules.translator.Translator`): caikit's train entry
# point matches `--module` against `__module__`, and saved config.yml files record it.
Translator.__module__ = __name__
