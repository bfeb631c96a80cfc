"""``python -m squeezebert.training train ...`` / ``python -m squeezebert.training pretrain ...``."""

import sys

from .cli import main

sys.exit(main())
