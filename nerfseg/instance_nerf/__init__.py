"""Instance-NeRF, the reference method of the benchmark (ICCV 2023, re-implemented from its description).

Parts: radiance-grid export of a trained scene, NeRF-RCNN (``nerfseg.instance_nerf.rcnn``: a 3D detector with a mask
head on the RGB + alpha grid), 2D-3D mask matching, the instance field and mask refinement, and the per-scene
pipeline that ties them into a benchmark Method. Each part is a subpackage so the torch-heavy pieces are only
imported by the commands that need them.
"""
