"""The key-image stage: a scene's still, composed from the brand (``composed``) or sampled by the user's own
model and finished (``sampled``), at the size its model family samples best (``model_sizes``)."""
