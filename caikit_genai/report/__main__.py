"""`python -m caikit_genai.report [--check]`: see the package docstring."""

import sys

from . import main

sys.exit(main())
