"""Raw messages packed in one buffer, as a file or a reader hands them over."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LineBlock", "BOM"]

BOM = b"\xef\xbb\xbf"  # UTF-8's byte order mark, which a Windows export puts before its first line


@dataclass(frozen=True)
class LineBlock:
    """Messages in one buffer: message ``i`` is ``buffer[starts[i]:ends[i]]``, ``b"\\n"`` between them.

    A chunk of a file, or a partition's records as the topic reader frames
    them. The decoder hands the whole block to the JSON reader as it is when
    every message is worth parsing, instead of splitting it and joining the
    parts again; single messages are sliced out only for dead letters.

    >>> block = LineBlock.split(b'{"a":1}\\n\\n{"b":2}')
    >>> len(block), block[2], list(block)
    (3, b'{"b":2}', [b'{"a":1}', b'', b'{"b":2}'])
    """

    buffer: bytes
    starts: np.ndarray
    ends: np.ndarray

    @classmethod
    def split(cls, buffer: bytes) -> LineBlock:
        ends = np.append(np.flatnonzero(np.frombuffer(buffer, dtype=np.uint8) == 10), len(buffer))
        return cls(buffer, np.concatenate([[0], ends[:-1] + 1]), ends)

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, i: int) -> bytes:
        return self.buffer[self.starts[i]:self.ends[i]]

    def __iter__(self):
        buf = self.buffer
        return (buf[a:b] for a, b in zip(self.starts.tolist(), self.ends.tolist()))

    @classmethod
    def concat(cls, blocks: list[LineBlock]) -> LineBlock:
        """One block of every message of ``blocks``, in order (one copy of their bytes)."""
        if len(blocks) == 1:
            return blocks[0]
        parts, starts, ends, at = [], [], [], 0
        for b in blocks:
            data = b.joined()
            base = int(b.starts[0])
            parts.append(data)
            starts.append(b.starts - base + at)
            ends.append(b.ends - base + at)
            at += len(data) + 1
        return cls(b"\n".join(parts), np.concatenate(starts), np.concatenate(ends))

    def pick(self, idx: np.ndarray) -> list[bytes]:
        """The messages at ``idx``, as bytes (one pass, no per-item numpy indexing)."""
        buf = self.buffer
        return [buf[a:b] for a, b in zip(self.starts[idx].tolist(), self.ends[idx].tolist())]

    def lengths(self) -> np.ndarray:
        return self.ends - self.starts

    def joined(self) -> bytes:
        """Every line, newline-separated, as one buffer (no copy when the block is the whole buffer)."""
        start, end = int(self.starts[0]), int(self.ends[-1])
        return self.buffer if (start, end) == (0, len(self.buffer)) else self.buffer[start:end]
