"""AttentionInspector: attention weights per layer and head, served (module.py); tokenizing
(encoding.py), batched forward passes (forward.py) and shaping the response (selection.py)."""

from .module import DEFAULT_MAX_RESPONSE_BYTES, AttentionInspector
from .request import AGGREGATES, ATTENTION_KINDS, InspectionRequest
from .selection import attention_rollout, renormalize_rows

# The public path of the class (`caikit_genai.modules.attention_inspector.AttentionInspector`): caikit's train entry
# point matches `--module` against `__module__`, and saved config.yml files record it.
AttentionInspector.__module__ = __name__
