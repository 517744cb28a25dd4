"""A local trainer whose training data survives the trip into a spawned training process.

caikit runs training in a spawned subprocess when `use_subprocess` is on (so a cancel really
stops torch), pickling the train call's arguments. Its `DataStreamSource` classes are generated
at runtime start-up and do not exist in the fresh child, so unpickling them fails there
("module 'caikit.core.data_model.base' has no attribute 'DataStreamSource...'"). This trainer,
plugged in through caikit's own `import_class` extension point, sends each source as its
element type plus its serialized request instead, and rebuilds it in the child. The data itself
is still read lazily in the child, so a bad file fails the job with an ERRORED reason.
"""

from caikit.core.data_model import DataStream
from caikit.core.model_management.local_model_trainer import LocalModelTrainer
from caikit.runtime.service_generation.data_stream_source import DataStreamSourceBase, make_data_stream_source


class PortableDataStream(DataStream):
    """A DataStreamSource reduced to (element type, serialized source): picklable anywhere."""

    def __init__(self, element_type: type, source_bytes: bytes):
        self.element_type = element_type
        self.source_bytes = source_bytes
        super().__init__(self._read_source)

    def _read_source(self):
        source_class = make_data_stream_source(self.element_type)
        return iter(source_class.from_binary_buffer(self.source_bytes))

    def __reduce__(self):
        return (PortableDataStream, (self.element_type, self.source_bytes))


def portable(value):
    if isinstance(value, DataStreamSourceBase):
        return PortableDataStream(value.ELEMENT_TYPE, value.to_binary_buffer())
    return value


class PortableLocalTrainer(LocalModelTrainer):
    """caikit's LOCAL trainer, with data stream sources made safe for spawned subprocesses."""

    name = "GENAI_LOCAL"

    def train(self, module_class, *args, **kwargs):
        return super().train(
            module_class,
            *(portable(arg) for arg in args),
            **{key: portable(value) for key, value in kwargs.items()},
        )
