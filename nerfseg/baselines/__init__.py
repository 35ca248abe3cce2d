"""Baselines: the 2D-prior row, Semantic-NeRF and DM-NeRF, each a :class:`nerfseg.methods.Method`."""
