"""JSON files that readers may open at any moment (a training's progress, a served model's
metrics): written whole or not at all."""

import json
import os
import tempfile
from typing import Any, Optional


def write_json_whole(path: str, data: Any, replace: bool = True, indent: Optional[int] = None) -> None:
    """A reader sees the last file or this one, never half of one. Without `replace`, never over a
    file already there (a link fails where the name exists). Raises OSError when it cannot write."""
    handle, partial = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as partial_file:
            json.dump(data, partial_file, indent=indent, ensure_ascii=False)
        if replace:
            os.replace(partial, path)
        else:
            try:
                os.link(partial, path)
            except FileExistsError:
                pass
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
