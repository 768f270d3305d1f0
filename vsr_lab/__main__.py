"""`python -m vsr_lab ...`"""

import sys

from vsr_lab.cli import main

sys.exit(main())
