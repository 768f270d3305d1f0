"""vsr_lab: train, ablate and sweep InstaVSR-style video super-resolution models."""

import logging

# bitsandbytes (pulled in by pyiqa, imported by diffusers) warns on every CPU import that it
# cannot fetch an optional kernel from a hub; we never fetch anything at run time.
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)

__version__ = "0.1.0"
