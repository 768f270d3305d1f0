"""Reading and writing videos, frame folders and images: the one place that talks to PyAV and the
image libraries, so data (training clips, degradations) and inference (upscale) share it."""
