"""Text data objects: training examples for the text modules."""

from py_to_proto.dataclass_to_proto import Annotated, FieldNumber

from caikit.core import DataObjectBase, dataobject

from .package import GENAI_PACKAGE


@dataobject(package=GENAI_PACKAGE)
class LabeledText(DataObjectBase):
    """One text classification training example: a text and the one label it carries."""

    text: Annotated[str, FieldNumber(1)]  # The text to classify
    label: Annotated[str, FieldNumber(2)]  # Its class name, e.g. "positive"
