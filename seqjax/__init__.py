"""seqjax: classic sequence models side by side, and how far back they remember.

Shape legend (suffixes on array names, e.g. `x_BxLxD`): B batch, L length,
S source length, T target length, D model width, H heads, K head dimension,
V output size, F input features.
"""

from seqjax import allocator as _allocator

_allocator.keep_freed_memory()  # before JAX starts its threads; see seqjax/allocator.py
