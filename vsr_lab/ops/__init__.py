"""Pure tensor functions shared by every layer (warping, resizing, colour); imports nothing of vsr_lab."""
