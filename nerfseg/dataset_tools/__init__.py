"""Building the benchmark: 3D-FRONT loading, demo scenes, cameras, rendering, 3D ground truth, priors."""
