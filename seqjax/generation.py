"""`launch.py --mode=generate`: restore a trained run and sample from it.

  text_to_image   a PNG grid per prompt (`--prompt`, repeatable) and one grid of
                  every digit's captions, under RUN/samples/, and
                  RUN/samples/samples.json with the caption accuracy of what was
                  drawn (`seqjax.digit_eval`), its chance level, the distance to
                  the training images, and the sampling time.
  other tasks     lm (decoder-only, continued from the prompt to the task's
                  length) and seq2seq (`generate` from the source): the tokens,
                  printed and written to RUN/samples/tokens.json. A prompt is
                  token ids separated by spaces; without one, inputs of the test
                  stream are used (for lm, their first half).

Every check of the user's input (prompts, numbers, whether the task has a
decoder) runs before anything is restored, compiled or written.
"""

import math
import os
import re
import time

import jax
import jax.numpy as jnp
import numpy as onp

from seqjax import digit_eval
from seqjax import experiment
from seqjax import run_files
from seqjax import sampling
from seqjax import stepping
from seqjax import tasks
from seqjax.errors import ConfigError
from seqjax.tasks import text_to_image as t2i


def run(workdir: str, prompts: list[str] | None = None, num_samples: int = 10,
        temperature: float = 1.0, top_k: int = 0, seed: int = 0,
        step: int | None = None) -> dict:
  """Samples from the run in `workdir`; returns the summary also written as JSON."""
  config = run_files.load_config(workdir)
  task = tasks.build(config.task)
  check_options(num_samples, temperature, top_k, task.io.output_size)
  options = dict(temperature=temperature, top_k=top_k, seed=seed)
  if isinstance(task, t2i.TextToImage):
    captions = [t2i.encode_caption(p) for p in prompts or []]  # refuses unknown words
    if config.model.name != "transformer":
      raise ConfigError("text_to_image samples with the decoder-only "
                        f"'transformer', not {config.model.name!r}.")
    return draw_images(experiment.load(workdir, step), workdir, prompts or [],
                       captions, num_samples, **options)
  return draw_tokens(workdir, config, task, prompts, num_samples, step, **options)


def check_options(num_samples: int, temperature: float, top_k: int,
                  vocab: int) -> None:
  """Refuses sampling options outside what `seqjax.sampling` draws from; `vocab`
  is V, the model's vocabulary."""
  if num_samples < 1:
    raise ConfigError(f"--num_samples={num_samples} must be at least 1.")
  if not math.isfinite(temperature) or temperature < 0:
    raise ConfigError(f"--temperature={temperature} is not allowed: a finite "
                      "number >= 0 (0: greedy).")
  if not 0 <= top_k <= vocab:
    raise ConfigError(f"--top_k={top_k} is not allowed: 0 (no limit) or 1.."
                      f"{vocab}, the model's vocabulary.")
  if top_k and temperature == 0:
    raise ConfigError(f"--top_k={top_k} needs --temperature > 0 (0 is greedy).")


def _sampler(restored, prompt_length: int, num_tokens: int, allowed_V=None,
             use_cache: bool = True, temperature: float = 0.0, top_k: int = 0):
  """A compiled `sample(prompt_BxQ, rng) -> tokens [B, N]` of a decoder-only run
  (letters as in seqjax.sampling)."""
  def sample(prompt_BxQ, rng):
    return sampling.sample_lm(
        restored.model, restored.params, prompt_BxQ, num_tokens,
        temperature=temperature, top_k=top_k,
        rng=rng if temperature > 0 else None, allowed_V=allowed_V,
        use_cache=use_cache)
  return jax.jit(sample)


def timed_sample(sample, prompt_BxQ, rng) -> tuple[onp.ndarray, dict]:
  """Compiles and runs `sample`; the tokens and the two wall times."""
  t0 = time.perf_counter()
  compiled = sample.lower(prompt_BxQ, rng).compile()
  t1 = time.perf_counter()
  tokens = onp.asarray(jax.block_until_ready(compiled(prompt_BxQ, rng)))
  t2 = time.perf_counter()
  return tokens, dict(compile_s=t1 - t0, sample_s=t2 - t1,
                      tokens_per_s=tokens.size / max(t2 - t1, 1e-9))


def image_sampler(restored, use_cache: bool = True, temperature: float = 0.0,
                  top_k: int = 0):
  """The compiled sampler of a text_to_image run: prompts [B, C + 1] -> image
  tokens [B, T] (word ids excluded from the draw)."""
  task = restored.task
  allowed_V = jnp.arange(task.vocab_size) >= task.image_offset
  return _sampler(restored, t2i.CAPTION_LENGTH + 1, task.image_length,
                  allowed_V, use_cache, temperature, top_k)


def images_of(task, tokens_BxN) -> onp.ndarray:
  return task.token_images(onp.asarray(tokens_BxN) - task.image_offset)


def draw_images(restored, workdir: str, prompts: list[str], captions: list,
                num_samples: int, temperature: float, top_k: int,
                seed: int) -> dict:
  task = restored.task
  clf = digit_eval.classifier(task)
  # Every digit, its captions' phrasings in turn, num_samples each; then prompts.
  grid_captions = [t2i.captions(d)[i % len(t2i.captions(d))]
                   for d in range(10) for i in range(num_samples)]
  grid_ids = [t2i.encode_caption(c) for c in grid_captions]
  ids = onp.stack(grid_ids + [c for c in captions for _ in range(num_samples)])
  sample = image_sampler(restored, True, temperature, top_k)
  tokens, timing = timed_sample(sample, task.prompt(ids), jax.random.key(seed))
  images = images_of(task, tokens)
  grid = images[:10 * num_samples].reshape(10, num_samples, 8, 8)
  digits = onp.repeat(onp.arange(10), num_samples)

  out_dir = os.path.join(workdir, "samples")
  tag = f"t{temperature:g}_k{top_k}_s{seed}"
  result = dict(step=restored.step, temperature=temperature, top_k=top_k,
                seed=seed, num_samples=num_samples,
                classifier=dict(fitted_on="real training-split images",
                                num_train_images=len(clf.train_images),
                                test_accuracy=clf.test_accuracy),
                all_digits=dict(
                    png=os.path.join(out_dir, f"all_digits_{tag}.png"),
                    **digit_eval.caption_accuracy(clf, grid.reshape(-1, 8, 8),
                                                  digits),
                    ranked=digit_eval.ranked_accuracy(clf, grid, onp.arange(10)),
                    **digit_eval.memorisation(task, grid.reshape(-1, 8, 8))),
                prompts=[], timing=dict(images=len(images), **timing))
  os.makedirs(out_dir, exist_ok=True)
  digit_eval.save_grid(result["all_digits"]["png"], grid,
                       [t2i.NAMES[d] for d in range(10)])
  for i, prompt in enumerate(prompts):
    start = (10 + i) * num_samples
    drawn = images[start:start + num_samples]
    png = os.path.join(out_dir, f"{_slug(prompt)}_{tag}.png")
    digit_eval.save_grid(png, drawn[None])
    entry = dict(prompt=prompt, png=png, digit=t2i.caption_digit(prompt))
    if entry["digit"] is not None:
      entry.update(digit_eval.caption_accuracy(
          clf, drawn, onp.full(num_samples, entry["digit"])))
    result["prompts"].append(entry)
  run_files.write_json(os.path.join(out_dir, f"samples_{tag}.json"), result)
  return result


def _slug(text: str) -> str:
  return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "prompt"


def _token_prompts(task, prompts, num_samples: int, config) -> onp.ndarray:
  io = task.io
  if prompts:
    rows = []
    for p in prompts:
      try:
        ids = [int(x) for x in p.split()]
      except ValueError:
        raise ConfigError(f"--prompt={p!r}: the task {config.task.name!r} takes "
                          "token ids separated by spaces.") from None
      bad = [i for i in ids if not 0 <= i < io.input_vocab]
      if bad or not ids:
        raise ConfigError(f"--prompt={p!r}: token ids must lie in "
                          f"0..{io.input_vocab - 1} (bad: {bad}).")
      rows += [ids] * num_samples
    if len({len(r) for r in rows}) > 1:
      raise ConfigError("--prompt: every prompt must have the same length.")
    if io.kind == "seq2seq" and len(rows[0]) != io.length:
      raise ConfigError(f"--prompt: a source of {config.task.name!r} has "
                        f"{io.length} tokens, not {len(rows[0])}.")
    if io.kind == "lm" and len(rows[0]) > io.length:
      raise ConfigError(f"--prompt: at most {io.length} tokens.")
    return onp.array(rows, onp.int32)
  exp = experiment.build(config)
  batch_fn = stepping.make_batch_fn(exp, experiment.TEST)  # held-out examples
  inputs = onp.concatenate([
      onp.asarray(batch_fn(i)["inputs"])
      for i in range(-(-num_samples // exp.train.batch_size))])[:num_samples]
  return inputs[:, :max(1, io.length // 2)] if io.kind == "lm" else inputs


def draw_tokens(workdir: str, config, task, prompts, num_samples: int,
                step: int | None, temperature: float, top_k: int,
                seed: int) -> dict:
  io = task.io
  if io.kind not in ("lm", "seq2seq") or io.input_vocab is None:
    raise ConfigError(
        f"--mode=generate needs a task of token inputs with a decoder (kind lm "
        f"or seq2seq); {config.task.name!r} is of kind {io.kind!r}"
        f"{'' if io.input_vocab else ' with real-valued inputs'}.")
  prompt_BxQ = _token_prompts(task, prompts, num_samples, config)
  restored = experiment.load(workdir, step)
  rng = jax.random.key(seed)
  if io.kind == "lm":
    num_tokens = io.length - prompt_BxQ.shape[1] + 1
    sample = _sampler(restored, prompt_BxQ.shape[1], num_tokens,
                      temperature=temperature, top_k=top_k)
  else:
    sample = jax.jit(lambda src, key: restored.model.apply(
        {"params": restored.params}, src, method="generate",
        max_length=io.target_length, temperature=temperature, top_k=top_k,
        rng=key if temperature > 0 else None))
  tokens, timing = timed_sample(sample, jnp.asarray(prompt_BxQ), rng)
  result = dict(step=restored.step, temperature=temperature, top_k=top_k,
                seed=seed, prompts=prompt_BxQ.tolist(), tokens=tokens.tolist(),
                timing=timing)
  out_dir = os.path.join(workdir, "samples")
  os.makedirs(out_dir, exist_ok=True)
  run_files.write_json(os.path.join(out_dir, "tokens.json"), result)
  return result
