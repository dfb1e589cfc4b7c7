"""monai_synpriv: MONAI components and bundles for learning from synthetic privileged information.

Subpackages, one role each:

- :mod:`monai_synpriv.networks`: translators and the multi-branch SSL network (``nn.Module`` s, no training logic).
- :mod:`monai_synpriv.losses`: CycleGAN/pix2pix/adversarial losses, N-branch VICReg, InfoNCE, Barlow Twins.
- :mod:`monai_synpriv.transforms`: array transforms and their dictionary (``...d``) wrappers, SSL views.
- :mod:`monai_synpriv.data`: datalists, public-set readers, input checks, unpaired sampling, paired datalists.
- :mod:`monai_synpriv.engines`: MONAI ``Trainer`` subclasses (CycleGAN, pix2pix, multi-branch SSL).
- :mod:`monai_synpriv.handlers`: Ignite handlers (image grids, MLflow extras, metrics JSON, collapse monitor, probes).
- :mod:`monai_synpriv.inference`: translating datasets and writing paired datalists.
- :mod:`monai_synpriv.evaluation`: probes of frozen encoders and classification metrics.
"""

from ._version import __version__

__all__ = ["__version__"]
