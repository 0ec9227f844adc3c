"""The assembly stage: ``render`` (every aspect and format of one ad, its subtitles, thumbnail and manifest),
``encode`` (the one ffmpeg pass: frames, overlays, transitions and sound into every format), ``cards``
(logo, intro and end cards) and ``metadata`` (the prompt and workflow carried inside the file)."""
