"""Measuring what models and baselines do on files and clips, outside training: scoring output
files, the linear headroom over bicubic, and fitting NIQE's pristine model on clean images."""
