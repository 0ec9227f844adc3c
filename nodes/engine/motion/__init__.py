"""The motion stage: a still made to move (``camera``: eased camera moves), a video model's frames fitted to
a scene (``frame_batch``), video files from any pack or provider (``clip_sources``, with ``refit``, the one
place a clip of any kind is fitted to its scene's length, rate and size)."""
