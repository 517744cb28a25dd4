"""The protobuf package for caikit-genai's own data objects."""

from caikit.core.data_model import CAIKIT_DATA_MODEL

GENAI_PACKAGE = f"{CAIKIT_DATA_MODEL}.caikit_genai"
