"""monai_synpriv: MONAI components and bundles for learning from synthetic privileged information.

Subpackages, one role each:

- :mod:`monai_synpriv.networks`: generators and other ``nn.Module`` s (no training logic).
- :mod:`monai_synpriv.losses`: cycle/identity and other losses.
- :mod:`monai_synpriv.transforms`: array transforms and their dictionary (``...d``) wrappers.
- :mod:`monai_synpriv.data`: datalists, public-set readers, input checks, unpaired sampling.
- :mod:`monai_synpriv.engines`: MONAI ``Trainer`` subclasses (CycleGAN, pix2pix).
- :mod:`monai_synpriv.handlers`: Ignite handlers (image grids, epoch averages, MLflow artifacts).
- :mod:`monai_synpriv.inference`: translating datasets and writing paired datalists.
- :mod:`monai_synpriv.evaluation`: translation quality against baselines.
"""

from ._version import __version__

__all__ = ["__version__"]
