"""The published .proto files: `python -m caikit_genai.protos protos` (what `make protos` runs).

caikit generates the gRPC services from our tasks and modules at start-up; clients in other
languages, and grpcurl without server reflection, need them as files (caikit-nlp #196). caikit's
own dump (`caikit.runtime.dump_services`, one file per package) renders them; the one thing it
leaves to chance is the order of each file's imports (a set, so it changes from run to run), which
is sorted here, so that tests/test_protos.py can render them again and fail on any difference.
The runtime config (CONFIG_FILES=runtime_config.yaml) decides which services are generated.
"""

import argparse
import glob
import os
import sys
import tempfile
from typing import List, Optional

import alog
from caikit.config import get_config
from caikit.runtime.dump_services import dump_grpc_services

LIBRARY = "caikit_genai"


def render_protos(output_dir: str) -> List[str]:
    """Write the .proto file of every package the runtime's gRPC services use into `output_dir`
    (removing .proto files no longer rendered); returns the file names."""
    with tempfile.TemporaryDirectory() as scratch:
        dump_grpc_services(scratch, write_modules_file=False, consolidate=True)
        rendered = {}
        for path in sorted(glob.glob(os.path.join(scratch, "*.proto"))):
            with open(path, encoding="utf-8") as proto_file:
                rendered[os.path.basename(path)] = sorted_imports(proto_file.read())
    os.makedirs(output_dir, exist_ok=True)
    for stale in glob.glob(os.path.join(output_dir, "*.proto")):
        if os.path.basename(stale) not in rendered:
            os.remove(stale)
    for name, text in rendered.items():
        with open(os.path.join(output_dir, name), "w", encoding="utf-8") as proto_file:
            proto_file.write(text)
    return list(rendered)


def sorted_imports(proto_text: str) -> str:
    """The same file with its `import` lines in sorted order, where they were."""
    lines = proto_text.split("\n")
    import_rows = [row for row, line in enumerate(lines) if line.startswith("import ")]
    for row, line in zip(import_rows, sorted(lines[row] for row in import_rows)):
        lines[row] = line
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", help="where the .proto files go (the repo's protos/)")
    args = parser.parse_args(argv)
    alog.configure(default_level="error")
    library = get_config().runtime.library
    if library != LIBRARY:
        print(f"the runtime config serves {library!r}, not {LIBRARY}: run with CONFIG_FILES=runtime_config.yaml", file=sys.stderr)
        return 2
    names = render_protos(args.output_dir)
    print(f"wrote {len(names)} .proto files to {args.output_dir}: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
