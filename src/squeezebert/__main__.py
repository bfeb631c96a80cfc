"""``python -m squeezebert ...`` (also ``torchrun ... -m squeezebert train ...``): the ``squeezebert`` command."""

import sys

from .cli import main

sys.exit(main())
