"""caikit-genai's own task contracts: the API that caikit generates RPCs and HTTP routes from.

Where caikit.interfaces.nlp already has a task (text classification, text generation), the
modules implement that one, so caikit-nlp clients work unchanged; only what it lacks lives here.
"""

from typing import List

from caikit.core import TaskBase, task

from .data_model.attention import AttentionResult
from .data_model.image import GeneratedImages
from .data_model.translation import TranslationListResult, TranslationResult


@task(required_parameters={"text": str}, output_type=AttentionResult)
class AttentionInspectionTask(TaskBase):
    """Per-layer, per-head attention weights of a transformer for one input (RPC
    `AttentionInspectionTaskPredict`, HTTP `/api/v1/task/attention-inspection`): attention weights,
    not an explanation of the model's output."""


@task(required_parameters={"num_images": int}, output_type=GeneratedImages)
class ImageGenerationTask(TaskBase):
    """Images generated from noise (RPC `ImageGenerationTaskPredict`, HTTP
    `/api/v1/task/image-generation`); `num_images` is the required input, a seed fixes each image."""


@task(required_parameters={"text": str}, output_type=TranslationResult)
class TranslationTask(TaskBase):
    """Translate one text (RPC `TranslationTaskPredict`, HTTP `/api/v1/task/translation`); input
    longer than the model takes is split into sentences, translated as a batch and joined."""


@task(required_parameters={"texts": List[str]}, output_type=TranslationListResult)
class TranslationListTask(TaskBase):
    """Translate a list of texts in one call (RPC `TranslationListTaskPredict`, HTTP
    `/api/v1/task/translation-list`), run as length-sorted batches."""
