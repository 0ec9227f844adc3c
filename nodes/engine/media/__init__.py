"""Stage-independent media helpers: ffmpeg discovery and probing, fonts, text as pixels, picture helpers and
the per-aspect frame layout. Nothing here imports a stage; the stages import it."""
