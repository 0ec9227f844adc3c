"""The sound of the ad and the words timed to it: narration (espeak-ng, Piper and the audio primitives),
cloud text-to-speech, the mix (music bed, ducking, loudness) and the subtitles cued to the voice."""
