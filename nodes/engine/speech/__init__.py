"""Speech: the spoken form of a line, the voices that say it, and how long they take."""
