"""DCGANImageGenerator: seeded image generation from a DCGAN trained here (module.py), its train
parameters (recipe.py) and trainer (training.py, evaluation.py, training_images.py)."""

from .evaluation import AveragedGenerator
from .images import seeded_noise, tile, to_unit_range
from .module import DCGANImageGenerator
from .recipe import DCGANRecipe
from .training import shuffled_batches, train_dcgan
from .training_images import read_training_images

# The public path of the class (`caikit_genai.modules.dcgan_image_generator.DCGANImageGenerator`): caikit's train entry
# point matches `--module` against `__module__`, and saved config.yml files record it.
DCGANImageGenerator.__module__ = __name__
