"""Publishing into the hybrid index: embedding reuse, bulk publish, doctor, schema."""

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from sqlmodel import Session, select

from canon.runtime import Runtime
from canon.settings import Settings
from governance import service
from governance.errors import Conflict
from governance.models import Article, ArticleVersion, Chunk, EmbeddingCache, Status
from governance.service import Actor, Role
from ingest.bootstrap import publish_paths
from ingest.index import IndexSync, doctor, embed_text
from ingest.pipeline import Outcome, ingest
from retrieval.embed import Embedder
from retrieval.store import PointRecord, Scope

REVIEWER = Actor("rita", frozenset({Role.reviewer, Role.clinical_reviewer}))
SECTIONS = {
    "Hours": "The clinic is open 8 a.m. to 5 p.m. on weekdays.",
    "Parking": "Park in Garage B on Elm Street; the first two hours are free.",
    "Billing": "Questions about a bill go to Patient Financial Services at extension 4400.",
}


def write_article(folder: Path, article_id: str, sections: dict[str, str]) -> None:
    body = "\n\n".join(f"## {name}\n\n{text}" for name, text in sections.items())
    (folder / f"{article_id}.md").write_text(
        f"---\nid: {article_id}\ntitle: {article_id.title()}\nowner: Ann\naudience: patient\n"
        f"---\n# {article_id.title()}\n\n{body}\n"
    )


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus" / "clinics"
    folder.mkdir(parents=True)
    for name in ("north", "south"):
        write_article(folder, name, SECTIONS)
    return tmp_path / "corpus"


def point_versions_by_article(runtime: Runtime) -> dict[str, set[int]]:
    with Session(runtime.engine) as s:
        owner = {v.id: v.article_id for v in s.exec(select(ArticleVersion)).all()}
    found: dict[str, set[int]] = {}
    for version_id in runtime.store.point_versions().values():
        found.setdefault(owner[version_id], set()).add(version_id)
    return found


def test_publish_paths_reports_each_step_as_it_ends(runtime: Runtime, corpus: Path) -> None:
    """`on_step` fires once per step, after the step's work (benchmarks sample memory there)."""
    seen: list[tuple[str, int, int]] = []

    def on_step(step: str) -> None:
        with Session(runtime.engine) as s:
            published = len(
                s.exec(
                    select(ArticleVersion).where(ArticleVersion.status == Status.published)
                ).all()
            )
        seen.append((step, runtime.sync.embedded, published))

    timings: dict[str, float] = {}
    publish_paths(runtime.engine, runtime.sync, [corpus], timings=timings, on_step=on_step)
    assert seen == [("ingest", 0, 0), ("review", 0, 0), ("embed", 6, 0), ("publish", 6, 2)]
    assert list(timings) == ["ingest", "review", "embed", "publish"]


def test_a_new_version_reembeds_only_what_changed(runtime: Runtime, corpus: Path) -> None:
    sync = runtime.sync
    publish_paths(runtime.engine, sync, [corpus])
    assert (sync.embedded, sync.reused) == (6, 6)  # warmed in one batch, then read back

    changed = dict(SECTIONS, Parking="Park in Garage C on Oak Street; parking is free.")
    write_article(corpus / "clinics", "north", changed)
    report = publish_paths(runtime.engine, sync, [corpus])
    assert report.count(Outcome.new_version) == 1
    assert sync.embedded == 7  # one changed passage went through the model
    assert sync.reused == 6 + 3

    with Session(runtime.engine) as s:
        article = s.get(Article, "north")
        assert article is not None and article.published_version_id is not None
        chunks = service.chunks_of(s, article.published_version_id)
        version = service.get_version(s, article.published_version_id)
        cached = {row.text_hash: row for row in s.exec(select(EmbeddingCache)).all()}
    assert len(cached) == 7
    texts = [embed_text(version.title, c.section, c.text) for c in chunks]
    fresh = runtime.embedder.embed(texts)
    reused = sync.vectors(texts)
    assert np.allclose(fresh, reused, atol=1e-5)  # a cached vector is the model's vector
    hits = runtime.store.query(
        fresh[1],
        runtime.sparse.query("Garage C Oak Street"),
        Scope(version_ids=(version.id or 0,)),
        limit=1,
    )
    assert hits[0].payload["text"].startswith("Park in Garage C")
    assert point_versions_by_article(runtime)["north"] == {version.id}


class CrashAfterFlip(IndexSync):
    """Dies after the pointer flipped, before the old points were deleted."""

    def remove_versions(self, version_ids: Sequence[int]) -> None:
        if version_ids:
            raise RuntimeError("simulated crash before deleting old points")


def test_bulk_publish_crash_then_doctor(runtime: Runtime, corpus: Path) -> None:
    publish_paths(runtime.engine, runtime.sync, [corpus])
    for name in ("north", "south"):
        write_article(corpus / "clinics", name, dict(SECTIONS, Hours="Open around the clock."))
    publish_paths(runtime.engine, runtime.sync, [corpus])  # v2 replaces v1 cleanly
    crashing = CrashAfterFlip(runtime.store, runtime.embedder, runtime.sparse, runtime.engine)
    for name in ("north", "south"):
        write_article(corpus / "clinics", name, dict(SECTIONS, Hours="Closed on holidays."))
    with pytest.raises(RuntimeError, match="simulated crash"):
        publish_paths(runtime.engine, crashing, [corpus])

    with Session(runtime.engine) as s:
        live = service.published_view(s)
    assert {v.article_id: v.number for v in live.values()} == {"north": 3, "south": 3}
    stale = point_versions_by_article(runtime)
    assert all(len(ids) == 2 for ids in stale.values())  # v2's points linger, unseen

    with Session(runtime.engine) as s:
        check = doctor(s, runtime.sync, repair=False)
        assert check.orphans_removed == 6 and not check.reindexed and not check.healthy
        repaired = doctor(s, runtime.sync)
    assert repaired.orphans_removed == 6
    assert {a: ids for a, ids in point_versions_by_article(runtime).items()} == {
        live_v.article_id: {vid} for vid, live_v in live.items()
    }
    with Session(runtime.engine) as s:
        assert doctor(s, runtime.sync).healthy


def test_doctor_repairs_missing_and_wrong_version_points(runtime: Runtime, corpus: Path) -> None:
    publish_paths(runtime.engine, runtime.sync, [corpus])
    with Session(runtime.engine) as s:
        live = service.published_view(s)
        north = next(v for v in live.values() if v.article_id == "north")
        south = next(v for v in live.values() if v.article_id == "south")
        north_chunks = service.chunks_of(s, north.version_id)
        south_chunks = service.chunks_of(s, south.version_id)
    runtime.store.delete_points([north_chunks[0].point_id])  # missing
    wrong = runtime.sync.points(*_article_version(runtime, south.version_id), south_chunks[:1])[0]
    runtime.store.upsert(
        [PointRecord(wrong.id, wrong.dense, wrong.sparse, dict(wrong.payload, version_id=999))]
    )
    with Session(runtime.engine) as s:
        report = doctor(s, runtime.sync)
    assert sorted(report.reindexed) == ["north v1", "south v1"]
    assert report.orphans_removed == 1  # the point that claimed version 999
    assert runtime.store.count() == len(north_chunks) + len(south_chunks)
    with Session(runtime.engine) as s:
        assert doctor(s, runtime.sync).healthy


def _article_version(runtime: Runtime, version_id: int) -> tuple[Article, ArticleVersion]:
    with Session(runtime.engine, expire_on_commit=False) as s:
        version = service.get_version(s, version_id)
        return service.get_article(s, version.article_id), version


class ConcurrentWriter(IndexSync):
    """Another writer moves one of the versions just after the new points are written."""

    def add_versions(
        self, items: Sequence[tuple[Article, ArticleVersion, Sequence[Chunk]]]
    ) -> None:
        super().add_versions(items)
        assert self.engine is not None
        with Session(self.engine) as other:
            version = other.get(ArticleVersion, items[-1][1].id)
            assert version is not None
            version.revision += 1
            other.add(version)
            other.commit()


def test_publish_many_is_all_or_nothing(runtime: Runtime, corpus: Path) -> None:
    """A flip that fails after the points were written leaves no points and nothing live."""
    ingest(runtime.engine, [corpus], author="alice", submit=True)
    with Session(runtime.engine, expire_on_commit=False) as s:
        ids = [v.id for v in service.versions_in(s, Status.in_review) if v.id is not None]
        for version_id in ids:
            service.approve(s, version_id, REVIEWER)
    racing = ConcurrentWriter(runtime.store, runtime.embedder, runtime.sparse, runtime.engine)
    with Session(runtime.engine) as s, pytest.raises(Conflict, match="changed under you"):
        service.publish_many(s, ids, REVIEWER, racing)
    assert runtime.store.count() == 0
    with Session(runtime.engine) as s:
        assert service.published_view(s) == {}
        assert len(service.versions_in(s, Status.approved)) == 2


def test_hybrid_collection_schema(runtime: Runtime, corpus: Path) -> None:
    publish_paths(runtime.engine, runtime.sync, [corpus])
    runtime.store.close()
    del runtime.__dict__["store"]
    shard = runtime.settings.shard_path
    config = json.loads((shard / "edge_config.json").read_text())
    assert config["vectors"] == {"dense": {"size": runtime.embedder.dim, "distance": "Cosine"}}
    assert config["sparse_vectors"] == {"sparse": {"modifier": "idf"}}
    store = runtime.store  # reopened from disk
    info = store._shard.info()  # type: ignore[attr-defined]
    schema = {name: str(index.data_type) for name, index in info.payload_schema.items()}
    assert schema == {
        "article_id": "PayloadSchemaType.Keyword",
        "version_id": "PayloadSchemaType.Integer",
        "version": "PayloadSchemaType.Integer",
        "service_line": "PayloadSchemaType.Keyword",
        "audience": "PayloadSchemaType.Keyword",
        "clinical": "PayloadSchemaType.Bool",
        "status": "PayloadSchemaType.Keyword",
    }
    hits = store.query(
        runtime.embedder.embed_query("extension 4400"),
        runtime.sparse.query("extension 4400"),
        Scope(audiences=("patient",)),
        limit=2,
        mode="sparse",
    )
    assert hits and all(h.payload["section"] == "Billing" for h in hits)
    assert {h.payload["status"] for h in hits} == {"published"}
    assert all(h.dense is not None and h.dense.shape == (runtime.embedder.dim,) for h in hits)


@pytest.mark.skipif(
    not os.environ.get("CANON_QDRANT_URL"),
    reason="no Qdrant server: set CANON_QDRANT_URL (and CANON_QDRANT_API_KEY) to run",
)
def test_same_code_path_on_a_qdrant_server(
    tmp_path: Path, corpus: Path, embedder: Embedder
) -> None:
    collection = f"canon_test_{os.getpid()}_{tmp_path.name}"[:60]
    rt = Runtime(Settings(home=tmp_path / "home", qdrant_collection=collection), embedder=embedder)
    try:
        publish_paths(rt.engine, rt.sync, [corpus])
        assert rt.store.count() == 6
        write_article(corpus / "clinics", "north", dict(SECTIONS, Hours="Open 24 hours."))
        publish_paths(rt.engine, rt.sync, [corpus])
        with Session(rt.engine) as s:
            assert doctor(s, rt.sync).healthy
        hits = rt.store.query(
            embedder.embed_query("open 24 hours"),
            rt.sparse.query("open 24 hours"),
            Scope(audiences=("patient",)),
            limit=1,
        )
        assert "24 hours" in hits[0].payload["text"]
    finally:
        rt.store._client.delete_collection(collection)  # type: ignore[attr-defined]
        rt.close()
