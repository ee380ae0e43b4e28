"""The discrete image tokenizer's arithmetic, shared by the `dvae` model (which
trains it) and the `text_to_image` task (which reads a trained one from its run
with `checkpoints.load_params`): pure functions of a parameter dict, jnp only.

An 8x8 image is cut into M = 16 patches of 2x2 pixels (`patches`: the patch grid
row-major, each patch row-major, the pixel layout of `vit.patchify` with A = 2).
Per patch, an MLP encoder gives a vector z [E]; its code is the nearest row of
the codebook [C, E] (van den Oord et al. 2017, VQ-VAE); that row goes through an
MLP decoder to logits over the G grey levels of each of the patch's 4 pixels.
The tokens of an image are its codes; the image of tokens is the argmax level of
each pixel (`decode`), so decoding a code is a lookup in a table of C patches.
Letters of this file and `seqjax.models.dvae`, beyond the legend in
seqjax.interfaces: N images, M patches per image, C codes, E code width, G grey
levels, U hidden units.
"""

import jax
import jax.numpy as jnp

PATCH = 2
SIDE = 8
NUM_PATCHES = (SIDE // PATCH) ** 2


def patches(images_Nx8x8):
  """[N, 8, 8] -> [N, 16, 4]."""
  n = images_Nx8x8.shape[0]
  g = SIDE // PATCH
  x = images_Nx8x8.reshape(n, g, PATCH, g, PATCH).transpose(0, 1, 3, 2, 4)
  return x.reshape(n, g * g, PATCH * PATCH)


def unpatch(patches_Nx16x4):
  """[N, 16, 4] -> [N, 8, 8], the inverse of `patches`."""
  n = patches_Nx16x4.shape[0]
  g = SIDE // PATCH
  x = patches_Nx16x4.reshape(n, g, g, PATCH, PATCH).transpose(0, 1, 3, 2, 4)
  return x.reshape(n, SIDE, SIDE)


def encoder_out(params, pixels_NxMx4):
  """Pixels in [0, 1] -> encoder outputs z [N, M, E]."""
  h_NxMxU = jax.nn.gelu(pixels_NxMx4 @ params["enc_w1"] + params["enc_b1"][None, None])
  return h_NxMxU @ params["enc_w2"] + params["enc_b2"][None, None]


def nearest(params, z_NxMxE):
  """The code whose codebook row is nearest to each z: [N, M] int32."""
  c_CxE = params["codebook"]
  d_NxMxC = (jnp.sum(z_NxMxE**2, -1, keepdims=True) - 2 * z_NxMxE @ c_CxE.T
             + jnp.sum(c_CxE**2, -1)[None, None])
  return jnp.argmin(d_NxMxC, axis=-1).astype(jnp.int32)


def decoder_logits(params, q_NxMxE):
  """Code embeddings [N, M, E] -> level logits [N, M, 4, G]."""
  h_NxMxU = jax.nn.gelu(q_NxMxE @ params["dec_w1"] + params["dec_b1"][None, None])
  out = h_NxMxU @ params["dec_w2"] + params["dec_b2"][None, None]
  return out.reshape(*out.shape[:-1], PATCH * PATCH, -1)


def encode(params, levels_NxMx4, grey_levels: int):
  """Quantised patches (levels 0..G-1) -> codes [N, M] int32."""
  x = jnp.asarray(levels_NxMx4, jnp.float32) / (grey_levels - 1)
  return nearest(params, encoder_out(params, x))


def decode(params, codes_NxM):
  """Codes [N, M] -> patch levels [N, M, 4] int32."""
  logits = decoder_logits(params, params["codebook"][codes_NxM])
  return jnp.argmax(logits, axis=-1).astype(jnp.int32)
