"""EXAMINE as a MONAI Label active-learning strategy: serve the highest-scored unlabelled image."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import HTTPException
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.strategy import Strategy

__all__ = ["ExamineNotScored", "ExamineStrategy"]

logger = logging.getLogger(__name__)


class ExamineNotScored(HTTPException):
    """No unlabelled image has an EXAMINE score yet (answered as HTTP 409 with the reason)."""

    def __init__(self, detail: str) -> None:
        super().__init__(status_code=409, detail=detail)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


class ExamineStrategy(Strategy):
    """The next image to label = the unlabelled image with the highest EXAMINE score.

    Reads the per-image scores that :class:`~monai_synpriv.label.scoring.ExamineScoring` wrote into the datastore
    (``<prefix>_score``; ties broken by ``<prefix>_rank``, then by id). Unlabelled images without a score (added
    after the last scoring run) are not served: while scored ones remain, a warning asks to re-score; when no
    unlabelled image has a score the request fails with HTTP 409 telling to run ``POST /scoring/<scoring name>``.

    Args:
        key_prefix: the scoring method's ``key_prefix``.
        scoring_name: the scoring method's name in the app, quoted in the error message.
    """

    def __init__(self, key_prefix: str = "examine", scoring_name: str = "examine") -> None:
        super().__init__("EXAMINE: the unlabelled image with the highest EXAMINE score")
        self.key_score = f"{key_prefix}_score"
        self.key_rank = f"{key_prefix}_rank"
        self.scoring_name = scoring_name

    def __call__(self, request, datastore: Datastore):
        images = datastore.get_unlabeled_images(request.get("label_tag"), request.get("labels"))
        if not images:
            return None
        scored, unscored = [], []
        for image_id in images:
            info = datastore.get_image_info(image_id)
            score, rank = info.get(self.key_score), info.get(self.key_rank)
            if _finite(score):
                scored.append((-float(score), rank if _finite(rank) else math.inf, image_id))
            else:
                unscored.append(image_id)
        if not scored:
            raise ExamineNotScored(
                f"none of the {len(images)} unlabelled images has an EXAMINE score yet: run "
                f"POST /scoring/{self.scoring_name} and wait until GET /scoring/ reports it DONE"
            )
        if unscored:
            logger.warning(
                f"EXAMINE:: {len(unscored)} unlabelled images have no score (added after the last scoring run?) and "
                f"are not served; run POST /scoring/{self.scoring_name} to include them"
            )
        neg_score, rank, image_id = min(scored)
        logger.info(f"EXAMINE:: next sample {image_id}: score {-neg_score:.6g}, rank {rank}")
        return {
            "id": image_id,
            self.key_score: -neg_score,
            self.key_rank: rank if math.isfinite(rank) else None,
            "unlabelled": len(images),
            "unscored_unlabelled": len(unscored),
        }
