"""``experiment=fast`` as a plain PyTorch script: the baseline of ``python -m benchmarks.bench_command``.

The same recipe as ``python -m src.train experiment=fast``: the same 5,000 validation images (``torch.randperm``
seeded 0), the same normalization and network, AdamW at 2e-3 with a one-cycle schedule (25% warm-up), label smoothing
0.1, batch 128, 2 epochs; the weights of the best validation epoch are tested on the 10,000 test images. No
Lightning, no Hydra, no logging, no checkpoints: what a user would write by hand.

    python scripts/plain_fast.py [data folder]     (default: data, where python -m src.train puts MNIST)
"""

import copy
import sys

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import datasets


def tensors(train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    mnist = datasets.MNIST(sys.argv[1] if len(sys.argv) > 1 else "data", train=train)
    return mnist.data.unsqueeze(1).float().div(255).sub(0.1307).div(0.3081), mnist.targets


def accuracy(net: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        chunks = zip(images.split(1000), labels.split(1000), strict=True)
        right = sum((net(chunk).argmax(1) == truth).sum().item() for chunk, truth in chunks)
    return right / len(labels)


torch.manual_seed(0)
images, labels = tensors(train=True)
order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
val, train = order[:5000], order[5000:]
net = nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU())
net.extend([nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)])
epochs, batch = 2, 128
optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3)
steps = epochs * -(-len(train) // batch)
schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps, pct_start=0.25)
best_acc, best_weights = -1.0, None
for _ in range(epochs):
    net.train()
    for index in train[torch.randperm(len(train))].split(batch):
        loss = F.cross_entropy(net(images[index]), labels[index], label_smoothing=0.1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    net.eval()
    val_acc = accuracy(net, images[val], labels[val])
    if val_acc > best_acc:
        best_acc, best_weights = val_acc, copy.deepcopy(net.state_dict())
net.load_state_dict(best_weights)
print(f"test accuracy {accuracy(net, *tensors(train=False)):.4f} (best val accuracy {best_acc:.4f})")
