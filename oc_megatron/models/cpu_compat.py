"""The only CPU shims: what Megatron-Core needs to train on a CPU-only torch (gloo, fp32).

Megatron-Core is written for CUDA. With ``use_cpu_initialization=True`` it never calls ``.cuda()`` on parameters, but
it still assumes a CUDA device in a few dozen places (measured on 0.16.1 and 0.19.2, see docs/platform.md):

* tensors created with ``device="cuda"`` / ``device=torch.cuda.current_device()`` (optimizer, grad clipping, DDP
  buffers, pipeline p2p shapes, rotary embeddings, loss reductions);
* ``torch.cuda.current_stream()`` / ``Stream`` / ``Event`` / ``synchronize()`` around communication;
* the model-parallel RNG tracker forks ``torch.cuda`` RNG states in every attention forward;
* ``param.type() == "torch.cuda.FloatTensor"`` checks in the optimizers;
* distributed-optimizer resume with torch's Adam (no Apex/TE) loses or shares Adam's per-parameter ``step``;
* 0.19.x imports ``triton`` unconditionally (one MoE kernel module reached from ``import megatron.core``).

``apply_cpu_shims()`` patches exactly these, only when CUDA is absent, and is idempotent. It must run before the
first Megatron-Core model, optimizer or pipeline schedule is built. On a CUDA machine it does nothing, so the GPU
code path is Megatron-Core unmodified. It changes torch process-wide (a pushed TorchFunctionMode, patched
``torch.cuda`` functions): call it in training / conversion processes, not in a process that runs unrelated torch
code (e.g. a pytest session: spawn a worker).

``make_megatron_importable()`` only registers the triton stub (when triton is missing); ``import oc_megatron``
runs it, so Megatron-Core imports made after importing this package always work.

Everything here redirects "the CUDA device" to the CPU; nothing changes numerics. Each patch says why it exists.
Other modules (training loop, checkpoint conversion) import this module and call ``apply_cpu_shims()``; they must not
add shims elsewhere.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import types
from typing import Any

__all__ = ["apply_cpu_shims", "cpu_shims_active", "cuda_available", "make_megatron_importable"]

_ACTIVE = False
_MODE = None


def cuda_available() -> bool:
    """True when torch sees a usable CUDA device (then no shim is applied)."""
    import torch

    return torch.cuda.is_available()


def cpu_shims_active() -> bool:
    return _ACTIVE


# --------------------------------------------------------------------------------------------------------------------
# 1. device="cuda" -> CPU.
# Megatron creates small tensors on "the current CUDA device" in many places (e.g. `torch.zeros(1,
# device=torch.cuda.current_device())` in grad-norm reductions, `torch.empty(shape, device="cuda")` for p2p
# receive buffers). A TorchFunctionMode sees every torch call and rewrites a CUDA device to "cpu"; this is more
# robust across Megatron-Core versions than patching each call site.


def _is_cuda_device(device: Any) -> bool:
    import torch

    if isinstance(device, int) and not isinstance(device, bool):
        return True  # a bare index means a CUDA ordinal (that is what torch.cuda.current_device() returns)
    if isinstance(device, str):
        return device.startswith("cuda")
    if isinstance(device, torch.device):
        return device.type == "cuda"
    return False


_CUDA_TYPE_NAMES = {
    "torch.FloatTensor": "torch.cuda.FloatTensor",
    "torch.HalfTensor": "torch.cuda.HalfTensor",
    "torch.BFloat16Tensor": "torch.cuda.BFloat16Tensor",
}


def _cuda_device_to_cpu_mode():
    import torch
    from torch.overrides import TorchFunctionMode

    class CudaDeviceToCpu(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: A002 - torch's signature
            kwargs = kwargs or {}
            if "device" in kwargs and _is_cuda_device(kwargs["device"]):
                kwargs = {**kwargs, "device": "cpu"}
            if func is torch.Tensor.cuda:
                # `.cuda()` on a CPU tensor: stay on the CPU (used for loss reductions and p2p shape exchange).
                return args[0]
            if func is torch.Tensor.to and len(args) > 1 and _is_cuda_device(args[1]):
                args = (args[0], "cpu", *args[2:])
            if func is torch.Tensor.type and len(args) == 1 and not kwargs:
                # The optimizers accept only 'torch.cuda.{Float,Half,BFloat16}Tensor' parameters: report that name.
                name = func(*args)
                return _CUDA_TYPE_NAMES.get(name, name)
            return func(*args, **kwargs)

    return CudaDeviceToCpu()


# --------------------------------------------------------------------------------------------------------------------
# 2. Streams, events, synchronisation: CPU collectives (gloo) are synchronous from the caller's view, so a stream is
# a no-op object. Megatron uses them to overlap communication with compute and to time steps.


class _NullStream:
    """Stands in for torch.cuda.Stream: every operation is a no-op on the CPU."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def wait_stream(self, stream: Any) -> None:
        pass

    def wait_event(self, event: Any) -> None:
        pass

    def record_event(self, event: Any = None) -> _NullEvent:
        return event if event is not None else _NullEvent()

    def synchronize(self) -> None:
        pass

    def query(self) -> bool:
        return True

    def __enter__(self) -> _NullStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


class _NullEvent:
    """Stands in for torch.cuda.Event (record/wait/synchronize are no-ops; timing comes from time.perf_counter)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def record(self, stream: Any = None) -> None:
        pass

    def wait(self, stream: Any = None) -> None:
        pass

    def synchronize(self) -> None:
        pass

    def query(self) -> bool:
        return True

    def elapsed_time(self, other: Any) -> float:
        return 0.0


_NULL_STREAM = _NullStream()


def _patch_cuda_runtime() -> None:
    import torch

    cuda = torch.cuda
    # current_device(): many call sites pass it as `device=`; index 0 is then mapped to the CPU by the mode above.
    cuda.current_device = lambda: 0
    cuda.current_stream = lambda device=None: _NULL_STREAM
    cuda.default_stream = lambda device=None: _NULL_STREAM
    cuda.Stream = _NullStream
    cuda.Event = _NullEvent
    cuda.stream = lambda stream=None: contextlib.nullcontext()
    cuda.synchronize = lambda device=None: None
    cuda.empty_cache = lambda: None
    # NVTX ranges (profiling annotations around p2p and layers) need the CUDA runtime library.
    cuda.nvtx.range_push = lambda msg: None
    cuda.nvtx.range_pop = lambda: None
    # 3. RNG: the model-parallel RNG tracker saves, seeds and restores "the CUDA generator" around every
    # tensor-parallel region (dropout, init). On the CPU the default generator plays that role; forking it keeps
    # the tracker's semantics (per-TP-rank streams for dropout inside TP regions, shared streams outside).
    cuda.get_rng_state = lambda device="cuda": torch.get_rng_state()
    cuda.set_rng_state = lambda new_state, device="cuda": torch.set_rng_state(new_state)
    cuda.manual_seed = lambda seed: torch.manual_seed(seed)


def _patch_megatron_rng() -> None:
    """Megatron's tracker calls private helpers that reach `torch.cuda.default_generators` directly."""
    import torch
    from megatron.core.tensor_parallel import random as mrandom

    mrandom._get_cuda_rng_state = lambda *args, **kwargs: torch.get_rng_state()
    mrandom._set_cuda_rng_state = lambda new_state, *args, **kwargs: torch.set_rng_state(new_state)


# --------------------------------------------------------------------------------------------------------------------
# 4. Distributed-optimizer resume without Apex/TE (always the case on a CPU): torch's Adam keeps a per-parameter
# `step` tensor, which Megatron saves in param_groups and, on load, restores into every parameter's state as *one
# shared tensor*. `load_parameter_state_from_fully_reshardable` then copies every state key from the checkpoint,
# including 'step', which the checkpoint's per-parameter tensors never contain (KeyError: 'step'). Keep the
# restored step, give each parameter its own copy (Adam increments it in place: a shared tensor would advance once
# per parameter per iteration and break bias correction), and copy the other states as Megatron does.


def _patch_distributed_optimizer_step() -> None:
    from megatron.core.optimizer.distrib_optimizer import DistributedOptimizer

    original = DistributedOptimizer._set_main_param_and_optimizer_states
    if getattr(original, "_oc_cpu_shim", False):
        return

    def set_states(self, model_param, tensors):
        group_index, group_order = self.model_param_group_index_map[model_param]
        main_param = self.optimizer.param_groups[group_index]["params"][group_order]
        state = self.optimizer.state[main_param]
        if "step" in tensors or "step" not in state:
            return original(self, model_param, tensors)
        step = state.pop("step")
        try:
            original(self, model_param, tensors)
        finally:
            state["step"] = step.detach().clone()

    set_states._oc_cpu_shim = True  # type: ignore[attr-defined]
    DistributedOptimizer._set_main_param_and_optimizer_states = set_states


# --------------------------------------------------------------------------------------------------------------------
# 5. triton: Megatron-Core 0.19 imports megatron/core/transformer/moe/ops/paged_stash.py (triton kernels for MoE
# paged stashing) from `import megatron.core`. Triton imports fine without a GPU when installed, but CPU torch does
# not install it. Registering a stub for that single module (never for `triton` itself, which would break
# torch._inductor) lets Megatron import; the kernels are CUDA-only and are never called by dense models.

_PAGED_STASH = "megatron.core.transformer.moe.ops.paged_stash"


def _triton_installed() -> bool:
    try:
        return importlib.util.find_spec("triton") is not None
    except (ValueError, ImportError):  # e.g. sys.modules["triton"] is None
        return False


def make_megatron_importable() -> None:
    """Let ``import megatron.core`` succeed without triton (Megatron-Core 0.19). Cheap; changes nothing else.

    Runs when ``oc_megatron`` is imported, so it precedes every Megatron-Core import made through this package.
    """
    if _PAGED_STASH in sys.modules or _triton_installed():
        return
    stub = types.ModuleType(_PAGED_STASH)
    stub.__doc__ = "oc_megatron CPU stub: triton is not installed; MoE paged-stash kernels are unavailable."

    def _unavailable(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("MoE paged-stash kernels need triton and CUDA")

    stub.GLOBAL_BLOCK_SIZE = 1024
    stub.paged_stash_copy_kernel = _unavailable
    stub.paged_stash_pop_kernel = _unavailable
    stub.__all__ = ["GLOBAL_BLOCK_SIZE", "paged_stash_copy_kernel", "paged_stash_pop_kernel"]
    sys.modules[_PAGED_STASH] = stub


def apply_cpu_shims() -> bool:
    """Make Megatron-Core run on a CPU-only torch. No-op (returns False) when CUDA is available.

    Idempotent; safe to call from every entry point and from spawned worker processes (each process needs it once;
    the device mode is pushed for the calling thread, which is the thread that runs training).
    """
    global _ACTIVE, _MODE
    if cuda_available():
        return False
    if _ACTIVE:
        return True
    make_megatron_importable()
    _patch_cuda_runtime()
    _patch_megatron_rng()
    _patch_distributed_optimizer_step()
    _MODE = _cuda_device_to_cpu_mode()
    _MODE.__enter__()  # stays pushed for the life of the process
    _ACTIVE = True
    return True
