"""OpenCoder models on Megatron-Core: presets and builders (``opencoder``), layer specs (``specs``), CPU shims
(``cpu_compat``). Submodules import Megatron-Core lazily, so importing this package is cheap."""
