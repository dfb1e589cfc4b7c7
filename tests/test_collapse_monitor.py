import math

import pytest
import torch
from ignite.engine import Engine, Events

from monai_synpriv.handlers import EmbeddingCollapseMonitor, effective_rank, embedding_std


def test_indicators_by_hand():
    collapsed = torch.ones(10, 4) + 1e-9 * torch.randn(10, 4)
    assert embedding_std(collapsed) < 1e-6
    spread = torch.eye(4).repeat(2, 1)
    assert effective_rank(spread) == pytest.approx(3.0, rel=1e-4)  # centred one-hot: 3 equal singular values
    line = torch.arange(10.0)[:, None] * torch.tensor([[1.0, 2.0, 3.0]])
    assert effective_rank(line) == pytest.approx(1.0, abs=1e-4)
    torch.manual_seed(0)
    iso = torch.randn(4000, 16)
    assert embedding_std(iso) == pytest.approx(1 / math.sqrt(16), rel=0.05)


def test_monitor_writes_epoch_metrics():
    torch.manual_seed(0)
    batches = [torch.randn(8, 6) for _ in range(3)] + [torch.zeros(8, 6) + 1.0 for _ in range(3)]

    def step(engine, batch):
        return [{"embedding": e, "loss": 0.0} for e in batch]  # a decollated output

    engine = Engine(step)
    EmbeddingCollapseMonitor().attach(engine)
    seen = []
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: seen.append(dict(e.state.metrics)))
    engine.run(batches, max_epochs=2, epoch_length=3)
    healthy, collapsed = seen[0], seen[1]
    assert healthy["embedding_effective_rank"] > 4 and healthy["embedding_std"] > 0.2
    assert collapsed["embedding_effective_rank"] < healthy["embedding_effective_rank"]
    assert 0 <= healthy["collapse_effective_rank"] <= 1
