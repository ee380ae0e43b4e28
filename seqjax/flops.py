"""An analytic estimate of the floating-point operations a training run costs.

An estimate, not a measurement: 2 FLOPs per parameter per token for the dense
matrix products of the forward pass (a multiply and an add; Kaplan et al.
2020, "Scaling Laws for Neural Language Models", section 2.1), counting every
parameter, embedding tables included (a lookup costs no FLOPs: a small
overcount), plus, per architecture, the work no parameter stands for: the
attention scores and the weighted sum of values (L keys per query), the
diagonal state updates of the linear recurrences. Elementwise gates and
normalisations are left out. Training is three forward passes per token (the
backward pass costs two), over `batch_size * L` tokens a step.
"""

TRAINING = 3  # forward + backward (twice the forward)


def _attention(model: dict, length: int) -> float:
  """q k^T and the weighted sum of v: 2 L D multiply-adds per token and layer
  (the whole L x L score matrix is computed; the causal mask saves nothing)."""
  return 4.0 * model["num_layers"] * length * model["width"]


def _mamba(model: dict, length: int) -> float:
  """Per channel (E = expand * D) and state (N): discretise, update, read out."""
  del length
  inner = model["expand"] * model["width"]
  return 6.0 * model["num_layers"] * inner * model["state_size"]


def _lru(model: dict, length: int) -> float:
  """A complex multiply-add per state (N, 0 meaning N = D)."""
  del length
  return 8.0 * model["num_layers"] * (model["state_size"] or model["width"])


def _rglru(model: dict, length: int) -> float:
  """The gated decay and update per channel of the RG-LRU (E, 0 meaning 4D/3)."""
  del length
  width = model["rnn_width"] or round(4 * model["width"] / 3)
  return 6.0 * model["num_layers"] * width


# The FLOPs per token of the forward pass beyond 2 per parameter, by model name;
# models not listed (rnn, lstm, gru, window: all their work is dense products
# of their parameters) add none.
EXTRA = {"transformer": _attention, "mamba": _mamba, "lru": _lru,
         "rglru": _rglru}


def forward_per_token(model: dict, num_params: int, length: int) -> float:
  """The forward pass's FLOPs per token of a model (`config.model` as a dict,
  its parameter count) on sequences of `length` tokens."""
  extra = EXTRA.get(model["name"])
  return 2.0 * num_params + (extra(model, length) if extra else 0.0)


def training(model: dict, num_params: int, length: int, batch_size: int,
             steps: int) -> float:
  """The FLOPs of `steps` training steps of `batch_size` sequences."""
  if min(num_params, length, batch_size) <= 0 or steps < 0:
    raise ValueError(f"training FLOPs of num_params={num_params}, length="
                     f"{length}, batch_size={batch_size}, steps={steps}.")
  return (TRAINING * forward_per_token(model, num_params, length)
          * batch_size * length * steps)
