"""caikit-genai's own task contracts: the API that caikit generates RPCs and HTTP routes from.

Where caikit.interfaces.nlp already has a task (text classification, text generation), the
modules implement that one, so caikit-nlp clients work unchanged; only what it lacks lives here.
"""

from caikit.core import TaskBase, task

from .data_model.attention import AttentionResult
from .data_model.image import GeneratedImages


@task(required_parameters={"text": str}, output_type=AttentionResult)
class AttentionInspectionTask(TaskBase):
    """Per-layer, per-head attention weights of a transformer for one input (RPC
    `AttentionInspectionTaskPredict`, HTTP `/api/v1/task/attention-inspection`): attention weights,
    not an explanation of the model's output."""


@task(required_parameters={"num_images": int}, output_type=GeneratedImages)
class ImageGenerationTask(TaskBase):
    """Images generated from noise (RPC `ImageGenerationTaskPredict`, HTTP
    `/api/v1/task/image-generation`); `num_images` is the required input, a seed fixes each image."""
