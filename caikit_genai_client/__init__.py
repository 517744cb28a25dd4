"""The Python client of a caikit-genai runtime (docs/client.md).

    from caikit_genai_client import Client
    with Client(grpc="localhost:8085", http="http://localhost:8080") as client:
        client.classify("sentiment", "a moving film")

gRPC goes through the server's reflection service: no generated code, and no copy of the
server's config, is needed on the client's side.
"""

from .client import Client
from .contract import TLS, ClientError
from .results import Attention, GeneratedText, Images, Label, ModelInfo, TextChunk, TrainingJob, TrainingProgress, TrainingStatus, Translation

__all__ = [
    "Attention",
    "Client",
    "ClientError",
    "GeneratedText",
    "Images",
    "Label",
    "ModelInfo",
    "TLS",
    "TextChunk",
    "TrainingJob",
    "TrainingProgress",
    "TrainingStatus",
    "Translation",
]
