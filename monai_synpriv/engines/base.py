"""The trainer base of every monai_synpriv trainer: MONAI's ``Trainer`` arguments, one precision setting for CPU and
CUDA, one optimisation step, per-epoch loss averages and checkpointable gradient scalers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from monai.engines import Trainer
from monai.engines.utils import IterationEvents, PrepareBatch, default_metric_cmp_fn
from monai.engines.workflow import Workflow
from monai.utils import IgniteInfo, min_version, optional_import
from torch.optim.optimizer import Optimizer
from torch.utils.data import DataLoader

from ..utils.precision import Precision, autocast, make_grad_scaler, resolve_precision
from .keys import TranslationIterationEvents
from .utils import attach_loss_averages, to_plain_tensor

if TYPE_CHECKING:
    from ignite.engine import Engine, EventEnum
    from ignite.metrics import Metric
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    EventEnum, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "EventEnum")
    Metric, _ = optional_import("ignite.metrics", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Metric")

__all__ = ["MixedPrecisionTrainer", "PrepareBatchKeys", "TranslationTrainerBase"]


class PrepareBatchKeys(PrepareBatch):
    """``prepare_batch`` of the multi-input trainers: the batch's tensors under ``keys``, in that order, on the
    device, as plain tensors (no MetaTensor overhead in the hot loop).

    Args:
        keys: batch keys, in the order the trainer consumes them.
        owner: name used in the error message (the trainer).
        hint: how to fix a missing key (appended to the error message).
    """

    def __init__(self, keys: Sequence[str], owner: str = "trainer", hint: str = "") -> None:
        self.keys, self.owner, self.hint = list(keys), owner, hint

    def __call__(
        self, batchdata: dict[str, Any], device: str | torch.device | None = None, non_blocking: bool = False, **kwargs
    ) -> tuple[torch.Tensor, ...]:
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        missing = [k for k in self.keys if k not in batchdata]
        if missing:
            raise KeyError(
                f"{self.owner}: batch has no key(s) {missing} (keys: {sorted(batchdata)}); {self.hint}".rstrip("; ")
            )
        return tuple(to_plain_tensor(batchdata[k], device, non_blocking) for k in self.keys)


def _check_yields_batches(owner: str, loader: Any) -> None:
    """Refuse a training loader that yields no batch (fewer items than ``batch_size`` with ``drop_last``, an empty
    datalist section): ignite would run empty epochs and fail at the end with MONAI's ``NotComputableError: Average
    must have at least one example``, naming nothing."""
    try:
        n_batches = len(loader)
    except TypeError:  # an iterable without a length (IterableDataset, a generator): nothing to check up front
        return
    if n_batches:
        return
    dataset = getattr(loader, "dataset", None)
    try:
        n_items = len(dataset) if dataset is not None else 0
    except TypeError:
        n_items = "an unknown number of"
    batch_size, drop_last = getattr(loader, "batch_size", None), getattr(loader, "drop_last", False)
    detail = f"{n_items} item(s)" + (f", batch_size {batch_size}, drop_last {drop_last}" if batch_size else "")
    raise ValueError(
        f"{owner}: the training data loader yields no batch ({detail}). Give the datalist section more items, or a "
        "smaller batch_size (or drop_last False)."
    )


class MixedPrecisionTrainer(Trainer):
    """
    A MONAI ``Trainer`` with one ``precision`` setting (``fp32``, ``bf16``, ``fp16``, ``auto``: see
    :mod:`monai_synpriv.utils.precision`) that works on CPU as on CUDA; MONAI's own trainers autocast on CUDA only.

    It takes MONAI's ``Trainer`` arguments (``prepare_batch``, ``iteration_update``, ``postprocessing``,
    ``key_train_metric``, ``additional_metrics``, ``metric_cmp_fn``, ``train_handlers``, ``event_names``, ...) and
    gives subclasses what every training step needs:

    - :meth:`autocast`: the forward pass's autocast context at the resolved precision (fp32 master weights);
    - :meth:`optimise`: backward (through the optimiser's gradient scaler in fp16), optional clipping of the global
      gradient norm on unscaled gradients, the optimiser step and the scaler update;
    - ``loss_names``: scalar outputs averaged per epoch into ``state.metrics["epoch_<name>"]`` by ignite's
      ``Average``, attached before the user's handlers so that these see the epoch values;
    - :meth:`state_dict`/:meth:`load_state_dict`: the engine's state plus ``precision`` and every gradient scaler's
      state, so that ``CheckpointSaver``/``CheckpointLoader`` of ``"trainer"`` resume an fp16 run with its scale.

    Subclasses create one scaler per optimiser with :meth:`add_scaler`, implement ``_iteration`` (reading the
    batch through ``self.prepare_batch``) and call :meth:`_finish_init` at the end of their ``__init__``.

    Args:
        device: where to run.
        max_epochs: total epochs.
        train_data_loader: the training loader.
        epoch_length: iterations per epoch, default ``len(train_data_loader)``.
        non_blocking: asynchronous host-to-device copies.
        prepare_batch: turns ``engine.state.batch`` into what ``_iteration`` consumes (see the subclass).
        iteration_update: replaces ``_iteration`` (MONAI/ignite semantics).
        postprocessing: transforms applied to the output at ``MODEL_COMPLETED``.
        key_train_metric: ignite metric(s) computed on the output, the first one is the key metric.
        additional_metrics: more ignite metrics (registered with ``key_train_metric``, as in MONAI).
        metric_cmp_fn: compares key metric values (default "greater is better").
        train_handlers: ignite handlers, attached after the loss averages.
        precision: ``fp32``, ``bf16``, ``fp16`` or ``auto``. Default: ``auto`` when ``amp`` else ``fp32``.
        amp: MONAI's switch, kept for configs written for MONAI trainers: ``True`` means ``precision="auto"``.
        event_names, event_to_attr: extra events to register, as in MONAI's ``Trainer``.
        decollate: decollate the output at ``MODEL_COMPLETED`` (MONAI's default handlers need it).
        optim_set_to_none: ``zero_grad(set_to_none=...)``.
        to_kwargs: more arguments of ``prepare_batch``.
        amp_kwargs: more arguments of ``torch.autocast`` (not ``dtype``/``enabled``: set ``precision``).
        grad_clip_norm: clip the global gradient norm of each optimiser's parameters (None: no clipping).

    Raises:
        ValueError: an unknown ``precision``, or ``amp_kwargs`` that set the dtype.
    """

    #: scalar outputs averaged per epoch into ``engine.state.metrics["epoch_<name>"]``
    loss_names: Sequence[str] = ("loss",)

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        train_data_loader: Iterable | DataLoader,
        epoch_length: int | None = None,
        non_blocking: bool = False,
        prepare_batch: Callable | None = None,
        iteration_update: Callable[[Engine, Any], Any] | None = None,
        postprocessing: Callable | None = None,
        key_train_metric: dict[str, Metric] | None = None,
        additional_metrics: dict[str, Metric] | None = None,
        metric_cmp_fn: Callable = default_metric_cmp_fn,
        train_handlers: Sequence | None = None,
        precision: str | None = None,
        amp: bool = False,
        event_names: list[str | EventEnum | type[EventEnum]] | None = None,
        event_to_attr: dict | None = None,
        decollate: bool = True,
        optim_set_to_none: bool = True,
        to_kwargs: dict | None = None,
        amp_kwargs: dict | None = None,
        grad_clip_norm: float | None = None,
    ) -> None:
        device = torch.device(device)
        self.precision = resolve_precision(precision if precision is not None else ("auto" if amp else "fp32"), device)
        if amp_kwargs and {"dtype", "enabled", "device_type"} & set(amp_kwargs):
            raise ValueError(
                f"amp_kwargs {sorted(amp_kwargs)} set the autocast dtype/switch; use precision='bf16'/'fp16'/'fp32'."
            )
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            data_loader=train_data_loader,
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            prepare_batch=prepare_batch if prepare_batch is not None else self.default_prepare_batch(),
            iteration_update=iteration_update,
            postprocessing=postprocessing,
            key_metric=key_train_metric,
            additional_metrics=additional_metrics,
            metric_cmp_fn=metric_cmp_fn,
            handlers=None,
            amp=self.precision != Precision.FP32,
            event_names=list(event_names or []),
            event_to_attr=event_to_attr,
            decollate=decollate,
            to_kwargs=to_kwargs,
            amp_kwargs=amp_kwargs,
        )
        self.optim_set_to_none = optim_set_to_none
        self.grad_clip_norm = grad_clip_norm
        self.scalers: dict[str, torch.amp.GradScaler] = {}
        self._train_handlers = train_handlers
        self._init_finished = False

    def default_prepare_batch(self) -> Callable:
        """The ``prepare_batch`` used when none is given (subclasses: a :class:`PrepareBatchKeys` of their keys)."""
        from monai.engines.utils import default_prepare_batch

        return default_prepare_batch

    def _finish_init(self) -> None:
        """Attach the per-epoch loss averages, then the user's handlers (call at the end of ``__init__``)."""
        attach_loss_averages(self, self.loss_names)
        if self._train_handlers is not None:
            self._register_handlers(self._train_handlers)
        self._init_finished = True

    def add_scaler(self, name: str) -> torch.amp.GradScaler | None:
        """A gradient scaler for the optimiser ``name`` (fp16 only, else None), checkpointed with the trainer."""
        scaler = make_grad_scaler(self.precision, self.state.device)
        if scaler is not None:
            self.scalers[name] = scaler
        return scaler

    def autocast(self):
        """The autocast context of the forward passes at this trainer's precision (a no-op in fp32)."""
        return autocast(self.state.device, self.precision, **self.amp_kwargs)

    def zero_grad(self, *optimizers: Optimizer) -> None:
        """Clear the gradients of ``optimizers`` (``set_to_none`` as configured)."""
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=self.optim_set_to_none)

    def optimise(
        self,
        loss: torch.Tensor,
        optimizer: Optimizer,
        scaler: str | None = None,
        parameters: Iterable[torch.Tensor] | None = None,
        after_backward: Callable[[], Any] | None = None,
    ) -> None:
        """Backward pass and step of ``optimizer``: through the named gradient scaler in fp16, with the global gradient
        norm of ``parameters`` (default: the optimiser's) clipped to ``grad_clip_norm`` on unscaled gradients.
        ``after_backward`` is called between the backward pass and the step (e.g. to fire ``BACKWARD_COMPLETED``)."""
        grad_scaler = self.scalers.get(scaler) if scaler is not None else None
        if grad_scaler is not None:
            grad_scaler.scale(loss).backward()
        else:
            loss.backward()
        if after_backward is not None:
            after_backward()
        if self.grad_clip_norm is not None:
            if grad_scaler is not None:
                grad_scaler.unscale_(optimizer)
            if parameters is None:
                parameters = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(parameters, self.grad_clip_norm)
        if grad_scaler is not None:
            grad_scaler.step(optimizer)
            grad_scaler.update()
        else:
            optimizer.step()

    def run(self) -> None:  # type: ignore[override]
        """Run the training. Unlike MONAI's ``Trainer.run``, the gradient scalers are kept (a resumed fp16 run
        continues at its checkpointed scale) and no CUDA-only scaler is created. A training loader that yields no
        batch is refused first, naming the counts."""
        if not self._init_finished:
            raise RuntimeError(f"{type(self).__name__}.__init__ must end with self._finish_init().")
        _check_yields_batches(type(self).__name__, self.data_loader)
        Workflow.run(self)

    def state_dict(self) -> dict[str, Any]:
        """The engine's state (epoch, iteration, ...), ``precision`` and each gradient scaler's state."""
        state = dict(super().state_dict())
        state["precision"] = self.precision
        state.update({f"grad_scaler_{name}": scaler.state_dict() for name, scaler in self.scalers.items()})
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (checkpoints without scaler entries load too: the scalers start afresh)."""
        state = dict(state_dict)
        state.pop("precision", None)
        scaler_states = {k[len("grad_scaler_") :]: state.pop(k) for k in list(state) if k.startswith("grad_scaler_")}
        super().load_state_dict(state)
        for name, scaler_state in scaler_states.items():
            if name in self.scalers:
                self.scalers[name].load_state_dict(scaler_state)


class TranslationTrainerBase(MixedPrecisionTrainer):
    """The base of the translation trainers (CycleGAN, CUT, pix2pix): a generator optimiser and a discriminator optimiser
    (one gradient scaler each in fp16), two batch keys read by a :class:`PrepareBatchKeys` and
    :class:`TranslationIterationEvents`. Subclasses implement ``_iteration``.

    Args:
        g_optimizer: the generators' optimiser.
        d_optimizer: the discriminators' optimiser.
        key_a, key_b: batch keys of the two domains.
        kwargs: :class:`MixedPrecisionTrainer`'s arguments.
    """

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        train_data_loader: Iterable | DataLoader,
        g_optimizer: Optimizer,
        d_optimizer: Optimizer,
        key_a: str = "A",
        key_b: str = "B",
        event_names: list[str | EventEnum | type[EventEnum]] | None = None,
        **kwargs: Any,
    ) -> None:
        self.key_a, self.key_b = key_a, key_b
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            train_data_loader=train_data_loader,
            event_names=list(event_names or []) + [TranslationIterationEvents],
            **kwargs,
        )
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        # MONAI's MLFlowHandler and StatsHandler log ``engine.optimizer``'s learning rate
        self.optimizer = g_optimizer
        self.add_scaler("g")
        self.add_scaler("d")

    def default_prepare_batch(self) -> Callable:
        return PrepareBatchKeys(
            (self.key_a, self.key_b), type(self).__name__, "set key_a/key_b to the keys of your two domains."
        )

    def _publish(
        self, engine: Workflow, output: dict[str, torch.Tensor], g_terms: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """End an iteration: add the generator's loss terms (detached, prefixed ``loss_``, without ``total``) to
        ``output``, make it ``engine.state.output`` and fire ``IterationEvents.MODEL_COMPLETED`` (MONAI then
        decollates it for its default handlers)."""
        output.update({f"loss_{name}": value.detach() for name, value in g_terms.items() if name != "total"})
        engine.state.output = output
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output

    def _get_pair(self, batchdata: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """The two domains' tensors of a batch, on the engine's device, through ``prepare_batch``."""
        real_a, real_b = self.prepare_batch(batchdata, self.state.device, self.non_blocking, **self.to_kwargs)[:2]
        return real_a, real_b
