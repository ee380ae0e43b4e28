"""Judging generated digit images: an independent classifier, caption accuracy,
distance to the training set, and sample grids.

The classifier is scikit-learn's LogisticRegression fitted on the real images of
the *training* split only (quantised like the model's images), never on
generated ones: it is fixed before any model is trained and cannot learn the
generator's habits. Caption accuracy is the fraction of generated images it
labels as the digit their caption names; a generator that ignores the caption
scores about 0.1 (`CHANCE`). Memorisation: the Euclidean distance (pixels in
[0, 1]) of each sample to its nearest training image, beside the same distance
for real held-out (test) images as the reference; a copying generator sits near 0.

Letters, beyond the legend in seqjax.interfaces: N images (8x8 pixels), G captions,
J samples per caption, M reference images.
"""

import dataclasses
import functools
import os

import numpy as onp

CHANCE = 0.1


@dataclasses.dataclass(frozen=True)
class DigitClassifier:
  """A classifier of 8x8 images in [0, 1], and the images it was fitted on."""
  model: object          # sklearn LogisticRegression
  train_images: onp.ndarray  # [N, 8, 8] the real training-split images it saw
  train_accuracy: float
  test_accuracy: float   # on the real test split: how far to trust its labels

  def predict(self, images_Nx8x8) -> onp.ndarray:
    return self.model.predict(_flat(images_Nx8x8))

  def probability(self, images_Nx8x8, digits_N) -> onp.ndarray:
    """Its probability that each image shows digits_N[i]."""
    p = self.model.predict_proba(_flat(images_Nx8x8))
    return p[onp.arange(len(p)), onp.asarray(digits_N)]


def _flat(images):
  images = onp.asarray(images, onp.float64)
  return images.reshape(images.shape[0], -1)


@functools.lru_cache(maxsize=4)
def classifier(task) -> DigitClassifier:
  """The evaluation classifier of `task` (a `text_to_image` task), fitted on its
  real training split and scored on its real test split."""
  from sklearn.linear_model import LogisticRegression  # pylint: disable=import-outside-toplevel
  images, labels = task.images("train")
  model = LogisticRegression(max_iter=2000)
  model.fit(_flat(images), labels)
  test_images, test_labels = task.images("test")
  return DigitClassifier(
      model, images,
      train_accuracy=float(onp.mean(model.predict(_flat(images)) == labels)),
      test_accuracy=float(onp.mean(model.predict(_flat(test_images)) == test_labels)))


def nearest_distance(images_Nx8x8, reference_Mx8x8) -> onp.ndarray:
  """[N] Euclidean distance of each image to its nearest reference image."""
  a, b = _flat(images_Nx8x8), _flat(reference_Mx8x8)
  squared = (a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None, :]
  return onp.sqrt(onp.maximum(squared.min(axis=1), 0.0))


def caption_accuracy(clf: DigitClassifier, images_Nx8x8, digits_N) -> dict:
  """Caption accuracy overall and per digit, with the chance level."""
  digits_N = onp.asarray(digits_N)
  hit_N = clf.predict(images_Nx8x8) == digits_N
  per_digit = {str(d): float(hit_N[digits_N == d].mean())
               for d in sorted(set(digits_N.tolist()))}
  return dict(caption_accuracy=float(hit_N.mean()), chance=CHANCE,
              per_digit=per_digit, num_images=int(len(hit_N)))


def ranked_accuracy(clf: DigitClassifier, images_GxJx8x8, digits_G) -> dict:
  """DALL-E's reranking (by CLIP there, by the classifier here): of the J samples
  of each caption keep the one the classifier finds most likely to show the
  caption's digit. Accuracy of all samples and of the kept ones. The kept ones
  are judged by the classifier that chose them, so after-ranking accuracy is an
  upper bound, not an independent measure."""
  groups, samples = images_GxJx8x8.shape[:2]
  flat = images_GxJx8x8.reshape(groups * samples, 8, 8)
  digits_GJ = onp.repeat(onp.asarray(digits_G), samples)
  p_GxJ = clf.probability(flat, digits_GJ).reshape(groups, samples)
  best = images_GxJx8x8[onp.arange(groups), p_GxJ.argmax(axis=1)]
  return dict(before=caption_accuracy(clf, flat, digits_GJ)["caption_accuracy"],
              after=caption_accuracy(clf, best, digits_G)["caption_accuracy"],
              samples_per_caption=int(samples))


def memorisation(task, images_Nx8x8) -> dict:
  train, _ = task.images("train")
  test, _ = task.images("test")
  samples = nearest_distance(images_Nx8x8, train)
  return dict(mean_nearest_train_distance=float(samples.mean()),
              exact_copies=float(onp.mean(samples == 0)),
              reference_test_to_train=float(nearest_distance(test, train).mean()))


def save_grid(path: str, images_RxCx8x8, row_labels=None, scale: int = 4) -> None:
  """Writes a PNG grid of R x C images (white background, dark ink)."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  rows, cols = images_RxCx8x8.shape[:2]
  label_in = 0.8 if row_labels else 0.1
  width = cols * 0.1 * scale + label_in
  fig, axes = plt.subplots(rows, cols, squeeze=False,
                           figsize=(width, rows * 0.1 * scale + 0.1))
  for r in range(rows):
    for c in range(cols):
      ax = axes[r, c]
      ax.imshow(images_RxCx8x8[r, c], cmap="gray_r", vmin=0, vmax=1,
                interpolation="nearest")
      ax.set_xticks([])
      ax.set_yticks([])
    if row_labels:
      axes[r, 0].set_ylabel(row_labels[r], rotation=0, ha="right", va="center",
                            fontsize=8)
  fig.subplots_adjust(wspace=0.05, hspace=0.05, left=label_in / width,
                      right=0.98, top=0.98, bottom=0.02)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=100)
  plt.close(fig)
