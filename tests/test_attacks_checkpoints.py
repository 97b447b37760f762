"""The committed attacks checkpoints still measure what their cards say, on a small slice of the real test split.

The cards hold the evaluation command's numbers on all 10,000 CIFAR-10 test images; here 500 (50 per class) for
clean accuracy and AdvGAN, 50 for PGD-10. Tolerances are about three binomial standard deviations of the slice.
"""

import pytest
import torch
import torchattacks

from models import registry
from training import attacks as train_attacks
from nndl_data import DatasetMissing
from nndl_data.attacks import load_cifar

CLASSIFIERS = ("attacks-resnet20-standard", "attacks-resnet20-noise", "attacks-resnet20-adversarial")
pytestmark = [
    pytest.mark.checkpoint,
    pytest.mark.skipif(not all(registry.available(name) for name in CLASSIFIERS + ("attacks-advgan",)),
                       reason="attacks checkpoints are not trained here (scripts/gpu_attacks.sh or python -m training.attacks)"),
]


@pytest.fixture(scope="module")
def test_slice():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small batches: one thread is faster, and far faster on shared cores
    try:
        images, labels, _ = load_cifar("cifar10", "test", limit_per_class=50)
    except DatasetMissing as error:
        pytest.skip(str(error))
    yield images, labels
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_clean_accuracy_matches_the_card(name, test_slice):
    card = registry.load_card(name)["metrics"]
    accuracy = train_attacks.accuracy(registry.load(name), *test_slice)
    assert abs(accuracy - card["clean_accuracy"]) <= 0.06, (accuracy, card["clean_accuracy"])


@pytest.mark.parametrize("name", ["attacks-resnet20-standard", "attacks-resnet20-adversarial"])
def test_pgd10_accuracy_at_8_matches_the_card(name, test_slice):
    images, labels = test_slice
    keep = torch.arange(len(labels)) % 10 == 0  # 5 per class
    x, y = images[keep].float().div(255), labels[keep]
    model = registry.load(name)
    torch.manual_seed(0)
    adversarial = torchattacks.PGD(model, eps=8 / 255, alpha=2 / 255, steps=10)(x, y)
    with torch.no_grad():
        accuracy = (model(adversarial).argmax(1) == y).float().mean().item()
    assert abs(accuracy - registry.load_card(name)["metrics"]["pgd10_accuracy"]["8"]) <= 0.2  # 3σ at n = 50


def test_advgan_success_rate_matches_the_card(test_slice):
    generator = registry.load("attacks-advgan")
    card = registry.load_card("attacks-advgan")
    target = registry.load(card["data"]["target_model"])
    rate = train_attacks.success_rate(generator, target, *test_slice)
    assert abs(rate - card["metrics"]["success_rate"]) <= 0.08, (rate, card["metrics"]["success_rate"])
