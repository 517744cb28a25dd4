"""Reading what train() accepts into uint8 arrays: image bytes or paths from a stream, a file or
an ImageFolder directory, or arrays in-process. Every problem is a ValueError naming the image."""

import contextlib
import io
import os
from typing import Iterator, List, Optional, Tuple

import numpy as np
from PIL import Image as PILImage, UnidentifiedImageError

from caikit.interfaces.vision.data_model import Image

from ...data_model.image import LabeledImage
from ...nets.dcgan import layout

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def read_training_images(training_data, image_size: int = 0, channels: int = 0) -> Tuple[np.ndarray, Optional[List[str]]]:
    """uint8 images [n, size, size, channels] and their labels (None when unlabeled) from what
    train() accepts; a ValueError naming the first problem (unreadable file, mixed sizes, no images)."""
    if channels not in (0, 1, 3):
        raise ValueError(f"channels must be 1 (grayscale), 3 (RGB) or 0 (the images' own), got {channels}")
    if image_size:
        layout(image_size)  # raises for a size the nets cannot make
    if training_data is None:
        raise ValueError("training_data is required: images, or a directory of PNG/JPEG files")
    if isinstance(training_data, tuple) and len(training_data) == 2 and isinstance(training_data[0], np.ndarray):
        return _from_array(training_data[0], list(training_data[1]), image_size, channels)
    if isinstance(training_data, np.ndarray):
        return _from_array(training_data, None, image_size, channels)
    if isinstance(training_data, (str, os.PathLike)):
        entries = _image_files(os.fspath(training_data), None, os.fspath(training_data))
    else:
        entries = list(_stream_entries(training_data))
    if not entries:
        raise ValueError("training_data holds no images")
    return _decode_all(entries, image_size, channels)


def _stream_entries(stream) -> Iterator[Tuple[str, object, Optional[str]]]:
    """(name for errors, bytes or file path, label) for each image a stream element gives."""
    from ...toolkit.training.subprocess_training import DATA_DIR_SETTING, training_data_dir  # pylint: disable=import-outside-toplevel
    from ...toolkit.serving.safe_paths import resolve_inside  # pylint: disable=import-outside-toplevel

    # A stream from a train request carries the runtime's training data dir (the spawned
    # training process does not have the runtime's config); in-process, the configured one.
    base_dir = getattr(stream, "base_dir", None)
    for index, element in enumerate(stream):
        if isinstance(element, dict):
            element = LabeledImage.from_json(element) if not isinstance(element.get("image"), (bytes, Image)) else LabeledImage(**element)
        image = getattr(element, "image", None)
        path = getattr(element, "path", None) or ""
        label = (getattr(element, "label", None) or "").strip() or None
        if image is not None and path:
            raise ValueError(f"training_data element {index} gives both image and path: give one")
        if image is not None:
            data = image if isinstance(image, bytes) else image.image_data
            if not data:
                raise ValueError(f"training_data element {index} has an empty image")
            yield f"element {index}", data, label
        elif path:
            base_dir = base_dir or training_data_dir()
            try:
                resolved = resolve_inside(base_dir, path, f"training_data element {index} path", DATA_DIR_SETTING)
            except Exception as err:  # INVALID_ARGUMENT from the path check: the job's reason
                raise ValueError(str(err)) from err
            if not os.path.exists(resolved):
                raise ValueError(f"training_data element {index}: {path!r} does not exist in the training data dir ({DATA_DIR_SETTING})")
            yield from _image_files(resolved, label, path)
        else:
            raise ValueError(f"training_data element {index} has neither image bytes nor a path: {element!r:.200}")


def _image_files(path: str, label: Optional[str], shown: str) -> List[Tuple[str, str, Optional[str]]]:
    """A file, or a directory's image files: ImageFolder layout (a sub-folder per class) when
    the directory has sub-folders and no label was given."""
    if os.path.isfile(path):
        return [(shown, path, label)]
    if not os.path.isdir(path):
        raise ValueError(f"training_data {shown!r} is neither an image file nor a directory")
    subdirs = sorted(name for name in os.listdir(path) if os.path.isdir(os.path.join(path, name)) and not name.startswith("."))
    entries = []
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(name for name in dirs if not name.startswith("."))
        relative = os.path.relpath(root, path)
        folder_label = label
        if label is None and subdirs and relative != ".":
            folder_label = relative.split(os.sep)[0]
        for name in sorted(names):
            if name.lower().endswith(IMAGE_SUFFIXES):
                entries.append((os.path.join(shown, relative, name) if relative != "." else os.path.join(shown, name), os.path.join(root, name), folder_label))
    if not entries:
        raise ValueError(f"training_data directory {shown!r} holds no .png, .jpg or .jpeg files")
    return entries


def _decode_all(entries, image_size: int, channels: int) -> Tuple[np.ndarray, Optional[List[str]]]:
    labels = [label for _, _, label in entries]
    labeled = sum(label is not None for label in labels)
    if 0 < labeled < len(labels):
        first = next(name for name, _, label in entries if label is None)
        raise ValueError(f"some images have a label and some do not (e.g. {first}): label all of them or none")
    decoded, first_size = [], None
    for name, source, _ in entries:
        picture = _decoded(name, source, channels)
        if image_size:
            if picture.size != (image_size, image_size):
                picture = picture.resize((image_size, image_size), PILImage.BILINEAR)
        else:
            if first_size is None:
                first_size = (name, picture.size)
            elif picture.size != first_size[1]:
                raise ValueError(
                    f"training images have mixed sizes: {first_size[0]} is {first_size[1][0]}x{first_size[1][1]}, {name} is "
                    f"{picture.size[0]}x{picture.size[1]}: make them one size, or set image_size to resize them all"
                )
        decoded.append(picture)
    modes = {picture.mode for picture in decoded}
    if len(modes) > 1:  # grayscale and colour mixed, no channels given: train in colour
        decoded = [picture.convert("RGB") for picture in decoded]
    arrays = np.stack([np.asarray(picture, dtype=np.uint8) for picture in decoded])
    if arrays.ndim == 3:
        arrays = arrays[..., None]
    if arrays.shape[1] != arrays.shape[2]:
        raise ValueError(f"training images must be square, got {arrays.shape[2]}x{arrays.shape[1]}: set image_size to resize them")
    _check_size(arrays.shape[1])
    return arrays, (labels if labeled else None)


def _decoded(name: str, source, channels: int) -> PILImage.Image:
    """One image in L or RGB: as `channels` asks, else grayscale stays grayscale."""
    try:
        with _opened(source) as picture:
            mode = {1: "L", 3: "RGB"}.get(channels) or ("L" if picture.mode in ("1", "L", "I;16", "I") else "RGB")
            return picture.convert(mode)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ValueError(f"training image {name} is not a readable PNG or JPEG file ({type(err).__name__})") from None


@contextlib.contextmanager
def _opened(source):
    """A loaded PIL image from bytes, a file path or a PIL image."""
    if isinstance(source, PILImage.Image):
        yield source
        return
    with PILImage.open(io.BytesIO(source) if isinstance(source, bytes) else source) as picture:
        picture.load()
        yield picture


def _check_size(size: int) -> None:
    try:
        layout(size)
    except ValueError:
        raise ValueError(f"the training images are {size}x{size}, a size the nets cannot make: set image_size (28, 32, 64 ...) to resize them") from None


def _from_array(array: np.ndarray, labels, image_size: int, channels: int):
    if array.dtype != np.uint8 or array.ndim not in (3, 4) or len(array) == 0:
        raise ValueError(f"training_data arrays must be uint8 [n, h, w] or [n, h, w, c], got {array.dtype} {array.shape}")
    if labels is not None and len(labels) != len(array):
        raise ValueError(f"got {len(array)} images and {len(labels)} labels")
    pictures = [PILImage.fromarray(image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image) for image in array]
    entries = [(f"array image {index}", picture, None if labels is None else str(labels[index])) for index, picture in enumerate(pictures)]
    return _decode_all(entries, image_size, channels)
