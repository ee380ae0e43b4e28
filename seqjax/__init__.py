"""seqjax: classic sequence models side by side, and how far back they remember.

The shape legend of array names (`x_BxLxD`) is in `seqjax.interfaces`.
"""
