"""A store's export gives back every point bit for bit; `clear` empties it (backups)."""

import uuid
from pathlib import Path

import numpy as np

from retrieval.sparse import SparseVec
from retrieval.store import EdgeStore, PointRecord


def test_edge_export_round_trips_bit_for_bit_and_clear_empties(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    dense = rng.standard_normal((300, 16)).astype(np.float32)
    dense /= np.linalg.norm(dense, axis=1, keepdims=True)
    points = [
        PointRecord(
            id=str(uuid.uuid4()),
            dense=dense[i],
            sparse=SparseVec([i, i + 1000], [0.5, 1.25]),
            payload={"version_id": i % 7, "text": f"passage {i}", "clinical": i % 2 == 0},
        )
        for i in range(300)
    ]
    first = EdgeStore(tmp_path / "a", 16)
    first.upsert(points)
    exported = sorted(first.export_points(), key=lambda p: p.id)
    assert len(exported) == 300
    second = EdgeStore(tmp_path / "b", 16)
    second.upsert(exported)
    again = sorted(second.export_points(), key=lambda p: p.id)
    for a, b in zip(exported, again, strict=True):
        assert a.id == b.id and a.payload == b.payload and a.sparse == b.sparse
        assert np.array_equal(np.asarray(a.dense), np.asarray(b.dense))
    assert second.point_versions() == first.point_versions()
    first.close()
    reopened = EdgeStore(tmp_path / "a", None)  # no dimension needed to open an existing shard
    assert reopened.count() == 300
    reopened.clear()
    assert reopened.count() == 0
    reopened.close()
    second.close()
