"""nerfseg: the open benchmark for 3D instance segmentation in Neural Radiance Fields.

The top-level package holds the contract every other part reads and writes (``spec``), the
I/O helpers that keep that contract honest (``io``), the command line (``cli``) and the shared
radiance-field core (``radiance``, needs the ``train`` extra).
"""

__version__ = "0.1.0"
