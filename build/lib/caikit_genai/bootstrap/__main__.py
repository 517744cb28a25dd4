"""`python -m caikit_genai.bootstrap [--missing] [--only NAME]`: see the package docstring."""

import sys

from . import main

sys.exit(main())
