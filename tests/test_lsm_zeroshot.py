"""The zero-shot contrastive readout: its loss, retrieval scoring and a learnable toy case."""

from __future__ import annotations

import math

import pytest
import torch

from neuroflow.errors import InvalidArgumentError
from neuroflow.lsm.zeroshot import (
    clip_loss,
    digit_images,
    reservoir_modality,
    retrieval_accuracy,
    train_zero_shot,
)


def test_clip_loss_by_hand_and_symmetry():
    # two orthogonal pairs perfectly aligned, temperature 1: each row's logits are [1, 0], so
    # the loss is CE = log(1 + e^-1) in both directions
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    loss = clip_loss(a, a.clone(), labels, torch.tensor(0.0))
    assert float(loss) == pytest.approx(math.log(1 + math.exp(-1)))
    swapped = clip_loss(a, a.flip(0), labels, torch.tensor(0.0))
    assert float(swapped) > float(loss)
    # same-class rows are positives of each other: equal labels give the target [1/2, 1/2], so
    # CE = -(log p1 + log p2) / 2 with p1 = e / (e + 1), p2 = 1 / (e + 1): log(1 + e) - 1/2
    same = clip_loss(a, a.clone(), torch.tensor([3, 3]), torch.tensor(0.0))
    assert float(same) == pytest.approx(math.log(1 + math.e) - 0.5)


def test_retrieval_accuracy_perfect_and_chance():
    g = torch.Generator().manual_seed(0)
    pool = torch.eye(3).repeat(4, 1)  # 12 items, class k along axis k
    pool_labels = torch.arange(3).repeat(4)
    assert retrieval_accuracy(pool, pool_labels, pool, pool_labels, [0, 1, 2], 5, g) == 1.0
    # queries carrying no information score the first candidate's class: 1/3 of the time right
    flat = torch.ones(12, 3)
    assert retrieval_accuracy(
        flat, pool_labels, pool, pool_labels, [0, 1, 2], 5, g
    ) == pytest.approx(1 / 3)


def noisy_digit_means(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """30 noisy copies of each digit's mean image ``[300, 64]``, digits 0-9 in turn."""
    images, labels = digit_images()
    means = torch.stack([images[labels == c].mean(0) for c in range(10)])
    y = torch.arange(10).repeat(30)
    return means[y] + 0.05 * torch.randn(len(y), 64, generator=g), y


def test_unseen_classes_retrieved_when_the_modalities_share_information():
    # "events" that are noisy copies of each digit's mean image: a projection learnt on digits
    # 1-7 must carry over to the unseen 8 and 9 above the 50% chance (measured: 83% and 69%)
    g = torch.Generator().manual_seed(0)
    x, y = noisy_digit_means(g)
    result = train_zero_shot(
        x[:200],
        y[:200],
        x[200:],
        y[200:],
        [1, 2, 3, 4, 5, 6, 7],
        [8, 9],
        epochs=30,
        steps=20,
        draws=5,
    )
    assert result.chance_unseen == 0.5
    assert result.event_to_image > 0.6 and result.image_to_event > 0.6
    assert result.seen_event_to_image > 0.5  # 7 classes: chance 1/7


def test_overlapping_classes_are_refused():
    x, y = torch.zeros(4, 3), torch.tensor([1, 2, 8, 9])
    with pytest.raises(InvalidArgumentError, match="overlap"):
        train_zero_shot(x, y, x, y, [1, 8], [8, 9])


def test_image_side_of_reservoir_features_is_scale_free_and_checked():
    # the image side as another event dataset's features: noisy copies of each digit's mean
    # image, as in the toy above; standardised by its seen-class training pool, the same
    # features on a scale of thousands (spike counts of long recordings) give the same result,
    # and it carries over to the unseen 8 and 9 above the 50% chance (measured: 80% and 70%)
    g = torch.Generator().manual_seed(1)
    x, y = noisy_digit_means(g)
    other, _ = noisy_digit_means(g)
    seen, unseen = [1, 2, 3, 4, 5, 6, 7], [8, 9]
    results = []
    for features in (other, 1000 * other + 500):
        side = reservoir_modality(features[:200], y[:200], features[200:], y[200:], name="toy")
        assert side.standardize and side.encode is None
        results.append(
            train_zero_shot(
                x[:200], y[:200], x[200:], y[200:], seen, unseen, epochs=30, draws=5, images=side
            )
        )
    assert results[0].as_dict() == pytest.approx(results[1].as_dict())
    assert results[0].event_to_image > 0.6 and results[0].image_to_event > 0.6
    # an image side lacking an unseen digit among its test samples is named
    no_nine = y[200:] != 9
    partial_side = reservoir_modality(other[:200], y[:200], other[200:][no_nine], y[200:][no_nine])
    with pytest.raises(InvalidArgumentError, match=r"test images \(reservoir features\).*digit 9"):
        train_zero_shot(x[:200], y[:200], x[200:], y[200:], seen, unseen, images=partial_side)
