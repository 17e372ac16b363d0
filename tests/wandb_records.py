"""Read back what an offline W&B run wrote: a .wandb file is a 7-byte header (':W&B', magic, version) then
LevelDB-log blocks of 32 KiB; each chunk has a 7-byte header (crc32c, little-endian length, type) and the
chunks of one record (FULL, or FIRST MIDDLE* LAST) hold one serialized `Record` protobuf."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

FILE_HEADER = 7
BLOCK = 32768
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path):
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, pending = FILE_HEADER, b""
    while pos + CHUNK_HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < CHUNK_HEADER:  # block trailer: zero padding
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + CHUNK_HEADER])
        chunk = data[pos + CHUNK_HEADER : pos + CHUNK_HEADER + length]
        pos += CHUNK_HEADER + length
        if kind == 0 and length == 0:
            continue
        if kind == FULL:
            pending = chunk
        elif kind == FIRST:
            pending = chunk
            continue
        elif kind == MIDDLE:
            pending += chunk
            continue
        elif kind == LAST:
            pending += chunk
        record = pb.Record()
        record.ParseFromString(pending)
        yield record


@dataclass
class OfflineRun:
    run: pb.RunRecord | None = None
    history: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    exit_code: int | None = None


def read_run(path: Path) -> OfflineRun:
    out = OfflineRun()
    for r in records(path):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            out.run = r.run
        elif kind == "history":
            out.history.append({_key(i): json.loads(i.value_json) for i in r.history.item})
        elif kind == "summary":
            out.summary.update({_key(i): json.loads(i.value_json) for i in r.summary.update})
        elif kind == "exit":
            out.exit_code = r.exit.exit_code
    return out


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def find_run_files(run_dir: Path) -> list[Path]:
    return sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))
