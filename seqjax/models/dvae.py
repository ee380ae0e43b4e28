"""`dvae`: a small discrete autoencoder of 8x8 digit images over 2x2 patches, in
the spirit of DALL-E's dVAE (Ramesh et al. 2021): the image tokenizer of
`text_to_image` with `task.tokenizer_run`.

Quantisation is VQ-VAE's (van den Oord et al. 2017): each patch's encoder output
z is replaced by its nearest codebook row q. The task's loss is reconstruction
cross-entropy only, so the two other VQ-VAE terms enter as gradients of the
quantisation step (`quantise`, a custom VJP): z receives the decoder's gradient
straight through plus the commitment term, each codebook row the codebook term.
(DALL-E instead relaxed the code with Gumbel-softmax; with the straight-through
Gumbel estimator this model used 3 of 32 codes after 1,000 steps, with nearest-
code quantisation 25.) Training and evaluation compute the same codes, so
evaluation measures exactly the tokenizer that `text_to_image` uses. The
arithmetic, and the letters of its shapes, live in `seqjax.dvae_codec`.

Interface (task kind "autoencode", `vqvae_digits`): inputs [B, 16, 4] pixels in
[0, 1] -> logits [B, 64, G] over the grey levels of the 64 pixels, patch-major.
"""

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqjax import configs
from seqjax import dvae_codec
from seqjax.errors import ConfigError
from seqjax.interfaces import IOSpec


@dataclasses.dataclass(frozen=True)
class DVAEConfig:
  """`config.model` fields of `dvae`."""
  codebook_size: int = 32   # C, codes (image-token vocabulary)
  code_width: int = 16      # E, width of a code's embedding
  hidden: int = 64          # U, hidden units of encoder and decoder MLPs
  commitment: float = 0.25  # beta, weight of the commitment term (VQ-VAE)

  def __post_init__(self):
    configs.check_positive("model", codebook_size=self.codebook_size,
                           code_width=self.code_width, hidden=self.hidden,
                           commitment=self.commitment)

  def build(self, io: IOSpec) -> nn.Module:
    if io.kind != "autoencode" or io.input_features != 4:
      raise ConfigError("model.name='dvae' serves the autoencode task "
                        "vqvae_digits (2x2 patches), not a task of kind "
                        f"{io.kind!r}.")
    return DVAE(self, io.output_size)


class DVAE(nn.Module):
  """Patches [B, M, 4] in [0, 1] -> pixel level logits [B, 4M, G].

  Attributes:
    config: the model config.
    grey_levels: G.
  """
  config: DVAEConfig
  grey_levels: int

  @nn.compact
  def __call__(self, pixels_BxMx4, *, train: bool = False, decode: bool = False):
    if decode:
      raise ValueError("dvae is an autoencoder; it has no autoregressive decoding.")
    cfg, g = self.config, self.grey_levels
    dense = nn.initializers.lecun_normal()
    zeros = nn.initializers.zeros
    params = dict(
        enc_w1=self.param("enc_w1", dense, (4, cfg.hidden)),
        enc_b1=self.param("enc_b1", zeros, (cfg.hidden,)),
        enc_w2=self.param("enc_w2", dense, (cfg.hidden, cfg.code_width)),
        enc_b2=self.param("enc_b2", zeros, (cfg.code_width,)),
        codebook=self.param("codebook", nn.initializers.normal(0.1),
                            (cfg.codebook_size, cfg.code_width)),
        dec_w1=self.param("dec_w1", dense, (cfg.code_width, cfg.hidden)),
        dec_b1=self.param("dec_b1", zeros, (cfg.hidden,)),
        dec_w2=self.param("dec_w2", dense, (cfg.hidden, 4 * g)),
        dec_b2=self.param("dec_b2", zeros, (4 * g,)))
    z_BxMxE = dvae_codec.encoder_out(params, pixels_BxMx4)
    codes_BxM = dvae_codec.nearest(params, z_BxMxE)
    q_BxMxE = quantise(z_BxMxE, params["codebook"], codes_BxM, cfg.commitment)
    out_BxMx4xG = dvae_codec.decoder_logits(params, q_BxMxE)
    return out_BxMx4xG.reshape(out_BxMx4xG.shape[0], -1, g)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def quantise(z_NxMxE, codebook_CxE, codes_NxM, commitment: float):
  """The codebook rows of `codes` [N, M, E]; see `_quantise_bwd` for gradients."""
  del z_NxMxE, commitment
  return codebook_CxE[codes_NxM]


def _quantise_fwd(z_NxMxE, codebook_CxE, codes_NxM, commitment):
  return codebook_CxE[codes_NxM], (z_NxMxE, codebook_CxE, codes_NxM)


def _quantise_bwd(commitment, res, g_NxMxE):
  """The VQ-VAE gradients without extra loss terms in the task: z receives the
  decoder's gradient straight through plus the commitment term
  commitment * d/dz |z - sg(q)|^2, and each codebook row the codebook term
  d/dc |sg(z) - c|^2 of the z assigned to it; both means over the N M patches."""
  z_NxMxE, codebook_CxE, codes_NxM = res
  q_NxMxE = codebook_CxE[codes_NxM]
  count = codes_NxM.size
  dz = g_NxMxE + commitment * 2 * (z_NxMxE - q_NxMxE) / count
  dcodebook = jnp.zeros_like(codebook_CxE).at[codes_NxM].add(
      2 * (q_NxMxE - z_NxMxE) / count)
  return dz, dcodebook, None


quantise.defvjp(_quantise_fwd, _quantise_bwd)
