"""Decoding the images of a scoring run in DataLoader workers, and batching them without crossing chunks."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Dataset, Sampler

from skinattn.data.images import DEFAULT_MAX_PIXELS, decode_image
from skinattn.errors import DataError
from skinattn.models import eval_transform
from skinattn.models.config import ModelConfig
from skinattn.storage import read_bytes
from skinattn.scoring.listing import ScoreItem


@dataclasses.dataclass(frozen=True)
class Loaded:
    """What a worker hands back for one item: a tensor, or why there is none."""

    position: int
    tensor: torch.Tensor | None
    error: str | None


class ScoreImages(Dataset):
    """Items of a run, read and decoded (with the pixel guard) and transformed as the model expects.

    Unreadable, undecodable and refused items come back as errors, never as exceptions: one bad file must
    not stop a run over tens of thousands.
    """

    def __init__(self, items: Sequence[ScoreItem], config: ModelConfig, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.items = items
        self.transform = eval_transform(config)
        self.input_size = config.input_size
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int) -> Loaded:
        item = self.items[position]
        if item.refusal:
            return Loaded(position, None, item.refusal)
        try:
            image = decode_image(read_bytes(item.location), item.file, self.max_pixels, at_least=self.input_size)
            return Loaded(position, self.transform(image), None)
        except DataError as exc:
            return Loaded(position, None, str(exc))
        except Exception as exc:  # noqa: BLE001 - e.g. a transform failing on an odd image: report, go on
            return Loaded(position, None, f"{item.file}: cannot be prepared for the model ({type(exc).__name__}: {exc})")


@dataclasses.dataclass
class Batch:
    images: torch.Tensor | None  # (B', 3, S, S) of the items that loaded
    positions: list[int]  # their positions
    errors: list[tuple[int, str]]  # (position, reason) of the items that did not

    def pin_memory(self) -> Batch:  # called by the DataLoader when pin_memory=True
        if self.images is not None:
            self.images = self.images.pin_memory()
        return self


def collate(loaded: list[Loaded]) -> Batch:
    good = [x for x in loaded if x.tensor is not None]
    images = torch.stack([x.tensor for x in good]) if good else None
    return Batch(images, [x.position for x in good], [(x.position, x.error or "") for x in loaded if x.tensor is None])


class ChunkBatches(Sampler[list[int]]):
    """Batches of positions, in order, that never straddle two chunks, over the chunks still to do."""

    def __init__(self, chunks: Sequence[range], batch_size: int):
        if batch_size < 1:
            raise DataError(f"batch size must be at least 1, got {batch_size}")
        self.chunks = chunks
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[list[int]]:
        for chunk in self.chunks:
            for start in range(chunk.start, chunk.stop, self.batch_size):
                yield list(range(start, min(start + self.batch_size, chunk.stop)))

    def __len__(self) -> int:
        return sum(-(-len(chunk) // self.batch_size) for chunk in self.chunks)
