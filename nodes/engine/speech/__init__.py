"""Speech: the spoken form of a line, the voices that say it, and how long they take.

``spoken.py``  what a voice says for what was written (per language)
``voice.py``   the Voice interface and its backends (espeak-ng, an estimate, cloud TTS)
``fit.py``     the room a scene has for a voice, and fitting a line into it
``numbers.py`` numbers as English and Korean words
"""
