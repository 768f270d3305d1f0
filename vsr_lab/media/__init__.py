"""Reading and writing videos, frame folders and images: the one place that talks to PyAV, decord
and the image libraries, so data (training clips, degradations) and inference (upscale) share it.

paths          extensions, natural sort, finding clips, frame files and videos on disk
images         the image reader (8/16-bit) and writer, header probe, depth conversion
backends       the decoders (decord, PyAV), how they are opened, decord's guarded calls
frame_folder   a folder of frames read as one clip (both readers use it)
clip_reader    windows [start, stop) of a clip as uint8 RGB: training, evaluate, degrade
stream_info    what an input carries besides pixels: timing, rotation, depth, colour tags
stream_reader  a whole input streamed with its timing, 8/16-bit: upscale
encoders       which encoders exist, pixel formats, crf, which container holds which codec
x264           libx264 options without its AVX-512 code (deterministic output)
video_writer   frames at a fixed rate into a video file
video_sink     upscale's video output: the input's timing, tags, audio and subtitles (remux)
remux          audio and subtitle packets copied from the input
frame_writer   frame folders 00000000.png ...: a whole clip, or upscale's output frame by frame
outputs        an output's `.partial` name and the checks made before writing it
"""
