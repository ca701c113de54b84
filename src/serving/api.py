"""The checkpoint's classifier as a LitServe ``LitAPI``: checked requests (src/serving/requests.py) batched by LitServe
into one forward pass on the device; each answer names the class, gives all ten probabilities and the image seen."""

import signal

import litserve as ls
import torch

from src.checkpoints import PixelClassifier


class ClassifierAPI(ls.LitAPI):
    def __init__(self, classifier: PixelClassifier, max_batch_size: int, batch_timeout: float) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
        self.classifier = classifier  # built and checked before the server starts; pickled into LitServe's worker

    def setup(self, device: str) -> None:
        # Ctrl-C reaches every process of the terminal's group: LitServe's main process stops this worker on its way out.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.classifier.to(device)  # LitServe sets self.device once this returns

    def decode_request(self, request, context: dict) -> torch.Tensor:  # unannotated: LitServe reads the JSON body itself
        context["image"] = request["pixels"]  # LitServe hands each request's own context to encode_response
        return torch.tensor(request["pixels"], dtype=torch.float32)

    def predict(self, pixels: torch.Tensor) -> torch.Tensor:
        """A batch ``(N, 28, 28)`` (``max_batch_size=1``: one image) -> probabilities ``(N, 10)`` (one row)."""
        with torch.inference_mode():
            probabilities = self.classifier(pixels.to(self.device).reshape(-1, *pixels.shape[-2:])).cpu()
        return probabilities if pixels.dim() == 3 else probabilities[0]

    def encode_response(self, probabilities: torch.Tensor, context: dict) -> dict:
        index = int(probabilities.argmax())
        name = self.classifier.data_set.classes[index]
        return {"class": index, "name": name, "probabilities": probabilities.tolist(), "image": context["image"]}
