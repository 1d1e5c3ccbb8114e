from oc_common import __version__  # noqa: F401
from oc_megatron.models.cpu_compat import make_megatron_importable

# Megatron-Core 0.19 imports triton from `import megatron.core`; without triton (CPU torch) register the one stub
# it needs before any module of this package imports Megatron-Core. Cheap, and a no-op when triton is installed.
make_megatron_importable()
