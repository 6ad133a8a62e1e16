"""Zero-shot multimodal retrieval with a frozen reservoir (Lin et al., Nat. Comput. Sci. 2025):
one FC + GELU projection per modality into a shared 64-d space, trained with a CLIP-style
symmetric contrastive loss on the seen classes (digits 1-7), tested on unseen classes (8, 9) by
top-1 retrieval in both directions.

Modalities: (a) the event recording (N-MNIST's camera events, or N-TIDIGITS' spoken digits on a
silicon cochlea: the paper's audio -> image task), as the lsm's reservoir features; (b) a
:class:`PairedModality`, the "image" side, either

* :func:`static_digit_images` (the default): the digit's static image, rate-coded: each pixel
  spikes with probability ``intensity / 16`` at each of ``T`` steps (scikit-learn's bundled 8 x 8
  digits, the "image branch" of the paper's E-MNIST pairing), as spike counts per pixel / T,
  drawn afresh each time an image is used; or
* :func:`reservoir_modality`: reservoir features of another event dataset through its own lsm
  (the authors' audio -> image scripts: N-MNIST recordings through a second reservoir).

A pair is an event recording and an image of the same digit (drawn at random per pair): the
classes, never the individual samples, link the two modalities.

Loss (Radford et al., CLIP, ICML 2021): with L2-normalised embeddings ``a``, ``b`` of a batch
and a learnable temperature ``t``, logits ``L = a b^T / t``;
``loss = (CE(L, diag) + CE(L^T, diag)) / 2``. Pairs of the same class in one batch are
duplicates, not negatives: their targets share the probability mass (a soft target over the
same-class entries), the usual fix for class-level pairing.

Retrieval test: for each query of one modality, one random candidate per test class from the
other modality; a hit when the nearest candidate (cosine) has the query's class. Chance is
``1 / classes``; accuracies are averaged over ``draws`` random candidate sets. The protocol is
the same whatever the image side is.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from neuroflow.errors import InvalidArgumentError


class Projection(nn.Module):
    """``Linear(in, dim)`` then GELU: one modality's projection head (the paper's)."""

    def __init__(self, in_features: int, dim: int = 64):
        super().__init__()
        self.fc = nn.Linear(in_features, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.fc(x))


def clip_loss(
    a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor, log_temp: torch.Tensor
) -> torch.Tensor:
    """Symmetric contrastive loss of embeddings ``a, b [B, d]`` paired row by row; rows with equal
    ``labels`` count as positives of each other (soft targets)."""
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    logits = a @ b.T / log_temp.exp()
    same = (labels[:, None] == labels[None, :]).to(logits.dtype)
    target = same / same.sum(1, keepdim=True)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def rate_code(images: torch.Tensor, steps: int, generator: torch.Generator) -> torch.Tensor:
    """Spike counts / ``steps`` of Bernoulli rate coding, ``images [B, P]`` in [0, 1]."""
    p = images.clamp(0, 1).unsqueeze(0).expand(steps, *images.shape)
    return torch.bernoulli(p, generator=generator).mean(0)


def digit_images() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled 8 x 8 digits: ``(images [1797, 64] in [0, 1], labels [1797])``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return torch.tensor(digits.data, dtype=torch.float32) / 16.0, torch.tensor(digits.target)


@dataclass
class PairedModality:
    """The image side of the pairs: samples of a training pool ``train [N, P]`` and a test pool
    ``test [M, P]`` with the digit each shows (``train_digits [N]``, ``test_digits [M]``).

    ``encode(samples [B, P], generator) -> features [B, F]`` turns samples into the projection's
    input each time they are used (rate coding draws fresh spikes; ``None``: the samples are the
    features). ``standardize``: scale features by the mean and std of the seen-class training
    pool, as the event side's reservoir features are. ``name`` says what the side is."""

    train: torch.Tensor
    train_digits: torch.Tensor
    test: torch.Tensor
    test_digits: torch.Tensor
    encode: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None
    standardize: bool = False
    name: str = "image"

    def features(self, samples: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        samples = samples.float()
        return samples if self.encode is None else self.encode(samples, generator)


def _rate_code_steps(images: torch.Tensor, generator: torch.Generator, steps: int) -> torch.Tensor:
    return rate_code(images, steps, generator)


def static_digit_images(steps: int = 50) -> PairedModality:
    """The default image side: :func:`digit_images` split in halves (first half for training
    pairs, second for testing), rate-coded over ``steps`` steps at every use."""
    images, labels = digit_images()
    half = images.shape[0] // 2
    return PairedModality(
        images[:half],
        labels[:half],
        images[half:],
        labels[half:],
        encode=partial(_rate_code_steps, steps=steps),
        name=f"static 8x8 digit images, rate-coded over {steps} steps",
    )


def reservoir_modality(
    train: torch.Tensor,
    train_digits: torch.Tensor,
    test: torch.Tensor,
    test_digits: torch.Tensor,
    name: str = "reservoir features",
) -> PairedModality:
    """An image side made of reservoir features ``[N, F]`` of another event dataset (e.g. N-MNIST
    through its own lsm), standardised as the event side's."""
    return PairedModality(train, train_digits, test, test_digits, standardize=True, name=name)


@dataclass
class ZeroShotResult:
    event_to_image: float
    image_to_event: float
    seen_event_to_image: float
    seen_image_to_event: float
    chance_unseen: float
    chance_seen: float

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def _pick(labels: torch.Tensor, classes: list[int], generator: torch.Generator) -> torch.Tensor:
    """One random index of each class of ``classes`` into ``labels``."""
    out = []
    for c in classes:
        idx = torch.nonzero(labels == c).flatten()
        out.append(idx[torch.randint(len(idx), (1,), generator=generator)])
    return torch.cat(out)


def retrieval_accuracy(
    queries: torch.Tensor,
    query_labels: torch.Tensor,
    pool: torch.Tensor,
    pool_labels: torch.Tensor,
    classes: list[int],
    draws: int,
    generator: torch.Generator,
) -> float:
    """Top-1 retrieval among one random candidate per class, averaged over ``draws``."""
    q = F.normalize(queries, dim=1)
    p = F.normalize(pool, dim=1)
    hits = 0.0
    for _ in range(draws):
        cand = _pick(pool_labels, classes, generator)
        best = (q @ p[cand].T).argmax(1)
        hits += float((torch.tensor(classes)[best] == query_labels).double().mean())
    return hits / draws


def _require_digits(digits: torch.Tensor, classes, what: str) -> None:
    for c in classes:
        if not bool((digits == c).any()):
            raise InvalidArgumentError(
                f"zero-shot: the {what} hold no digit {c} (their digits: "
                f"{sorted(set(digits.tolist()))}); every seen and unseen digit needs some"
            )


def train_zero_shot(
    event_train: torch.Tensor,
    label_train: torch.Tensor,
    event_test: torch.Tensor,
    label_test: torch.Tensor,
    seen: list[int],
    unseen: list[int],
    dim: int = 64,
    epochs: int = 100,
    lr: float = 3e-3,
    steps: int = 50,
    batch: int = 128,
    draws: int = 20,
    seed: int = 0,
    images: PairedModality | None = None,
) -> ZeroShotResult:
    """Train the two projections on seen-class pairs, score retrieval on the test recordings.

    ``event_*``: reservoir features ``[B, F]`` and the digit each recording is paired with.
    ``images``: the other side of the pairs (its ``encode`` must keep the feature width); by
    default :func:`static_digit_images` rate-coded over ``steps`` steps. Each training recording
    of a seen digit is paired with a random training image of that digit, drawn afresh at every
    epoch; the retrieval test uses the test recordings and the test images.
    """
    if set(seen) & set(unseen):
        raise InvalidArgumentError(f"seen {seen} and unseen {unseen} classes overlap")
    for c in (*seen, *unseen):
        if not 0 <= c <= 9:
            raise InvalidArgumentError(f"zero-shot: {c} is not a digit 0-9 (pairs link digits)")
    images = static_digit_images(steps) if images is None else images
    _require_digits(label_test, (*seen, *unseen), "test recordings")
    _require_digits(images.test_digits, (*seen, *unseen), f"test images ({images.name})")
    _require_digits(images.train_digits, seen, f"training images ({images.name})")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    keep = torch.isin(label_train, torch.tensor(seen))
    ev, ev_lab = event_train[keep].float(), label_train[keep]
    if len(ev) == 0:
        raise InvalidArgumentError(f"no training recordings of the seen classes {seen}")
    mean, std = ev.mean(0), ev.std(0).clamp_min(1e-6)
    img_mean, img_std = torch.tensor(0.0), torch.tensor(1.0)
    if images.standardize:
        pool = images.train[torch.isin(images.train_digits, torch.tensor(seen))].float()
        img_mean, img_std = pool.mean(0), pool.std(0).clamp_min(1e-6)

    def image_features(samples: torch.Tensor) -> torch.Tensor:
        return (images.features(samples, gen) - img_mean) / img_std

    event_head = Projection(ev.shape[1], dim)
    image_head = Projection(images.train.shape[1], dim)
    log_temp = nn.Parameter(torch.tensor(math.log(0.07)))
    params = [*event_head.parameters(), *image_head.parameters(), log_temp]
    opt = torch.optim.Adam(params, lr=lr)
    by_class = {c: torch.nonzero(images.train_digits == c).flatten() for c in seen}
    for _ in range(epochs):
        order = torch.randperm(len(ev), generator=gen)
        for start in range(0, len(ev), batch):
            idx = order[start : start + batch]
            labels = ev_lab[idx]
            pick = torch.stack(
                [
                    by_class[int(c)][torch.randint(len(by_class[int(c)]), (1,), generator=gen)][0]
                    for c in labels
                ]
            )
            img = image_features(images.train[pick])
            loss = clip_loss(event_head((ev[idx] - mean) / std), image_head(img), labels, log_temp)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        ev_emb = event_head((event_test.float() - mean) / std)
        img_emb = image_head(image_features(images.test))
        img_digits = images.test_digits

        def both(classes):
            q_ev = torch.isin(label_test, torch.tensor(classes))
            q_im = torch.isin(img_digits, torch.tensor(classes))
            e2i = retrieval_accuracy(
                ev_emb[q_ev], label_test[q_ev], img_emb, img_digits, classes, draws, gen
            )
            i2e = retrieval_accuracy(
                img_emb[q_im],
                img_digits[q_im],
                ev_emb[q_ev],
                label_test[q_ev],
                classes,
                draws,
                gen,
            )
            return e2i, i2e

        e2i, i2e = both(unseen)
        s_e2i, s_i2e = both(seen)
    return ZeroShotResult(e2i, i2e, s_e2i, s_i2e, 1.0 / len(unseen), 1.0 / len(seen))
