"""The real-video bench (`python -m vsr_lab realbench`): whether a checkpoint improves the videos
users have, measured against bicubic and Lanczos of the same decoded LR frames. clips.py renders
held-out moving-camera clips, conditions.py makes the LR as real videos arrive (registered by
name), footage.py cuts real footage, runner.py runs it all through `upscale`'s code and
`evaluate`'s scores, report.py makes the tables, the JSON and the nested MLflow run."""
