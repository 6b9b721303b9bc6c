"""The chunker the owner API uses for drafts written over HTTP: ingest's own Markdown path."""

from governance.drafts import Chunker
from governance.models import ChunkDraft
from ingest.chunk import ChunkBudget, chunk_blocks
from ingest.parse import partition


def markdown_chunker(budget: ChunkBudget) -> Chunker:
    def chunk(body: str, title: str) -> list[ChunkDraft]:
        return chunk_blocks(partition(body, "md"), title, budget)

    return chunk
