"""Image data objects: what DCGANImageGenerator returns and trains on.

Images travel as caikit's vision `Image` (one `image_data` bytes field: PNG or JPEG; base64 in
HTTP JSON), since caikit's data models cannot nest the lists a pixel array would need.
"""

from typing import List, Optional

from py_to_proto.dataclass_to_proto import Annotated, FieldNumber

from caikit.core import DataObjectBase, dataobject
from caikit.interfaces.vision.data_model import Image

from .package import GENAI_PACKAGE


@dataobject(package=GENAI_PACKAGE)
class GeneratedImages(DataObjectBase):
    """Generated images, with the seed and class label behind each."""

    # The images (PNG unless image_format was jpeg); one tiled image when as_grid was set
    images: Annotated[List[Image], FieldNumber(1)]
    # The seed of each generated image, in order (row-major for a grid): asking for one of them
    # again, with num_images 1, gives that image alone
    seeds: Annotated[List[int], FieldNumber(2)]
    # The class label of each generated image (empty for a model trained without labels)
    labels: Annotated[List[str], FieldNumber(3)]
    # The model's image side in pixels, and channels (1 grayscale, 3 RGB)
    image_size: Annotated[int, FieldNumber(4)]
    channels: Annotated[int, FieldNumber(5)]
    # Images per row of a grid or interpolation (1 for a plain list)
    columns: Annotated[int, FieldNumber(6)]


@dataobject(package=GENAI_PACKAGE)
class LabeledImage(DataObjectBase):
    """One training example: an image (bytes) or a path in the training data dir, and its class.

    `path` may name one PNG/JPEG file or a directory of them; a directory's sub-folders are its
    classes (torchvision's ImageFolder layout) unless `label` is given."""

    image: Annotated[Optional[Image], FieldNumber(1)]  # The encoded image (PNG or JPEG bytes)
    path: Annotated[str, FieldNumber(2)]  # Or a file or directory, relative to the training data dir
    label: Annotated[str, FieldNumber(3)]  # Its class name (optional: omit for an unconditional model)
