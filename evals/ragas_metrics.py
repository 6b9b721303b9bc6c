"""ragas metrics: the non-LLM ones always; faithfulness and answer relevancy only when
an OpenAI-compatible endpoint is configured (`CANON_LLM_BASE_URL`, `CANON_LLM_MODEL`)."""

import os
import statistics
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from evals.progress import Report, quiet


def score(
    samples: Sequence[dict[str, Any]],
    *,
    report: Report = quiet,
    embed_query: Callable[[str], Iterable[float]] | None = None,
) -> dict[str, float]:
    """Mean of each metric over the samples that carry what the metric needs.

    A sample: `user_input`, `response`, `reference`, `retrieved_contexts`, and
    optionally `reference_contexts`.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from ragas import SingleTurnSample
        from ragas.metrics import (
            NonLLMContextPrecisionWithReference,
            NonLLMContextRecall,
            NonLLMStringSimilarity,
        )

    metrics: dict[str, Any] = {"ragas_string_similarity": NonLLMStringSimilarity()}
    with_refs = [s for s in samples if s.get("reference_contexts")]
    if with_refs:
        metrics["ragas_context_precision"] = NonLLMContextPrecisionWithReference()
        metrics["ragas_context_recall"] = NonLLMContextRecall()
    llm = _llm_metrics(embed_query)
    metrics |= llm
    values: dict[str, list[float]] = {name: [] for name in metrics}
    for i, raw in enumerate(samples, start=1):
        sample = SingleTurnSample(
            user_input=raw["user_input"],
            response=raw["response"],
            reference=raw["reference"],
            retrieved_contexts=list(raw["retrieved_contexts"]) or [""],
            reference_contexts=list(raw.get("reference_contexts") or []) or None,
        )
        for name, metric in metrics.items():
            if name in ("ragas_context_precision", "ragas_context_recall") and not raw.get(
                "reference_contexts"
            ):
                continue
            values[name].append(float(metric.single_turn_score(sample)))
        report("ragas", i, len(samples))
    return {name: statistics.fmean(v) for name, v in values.items() if v}


def llm_configured() -> bool:
    return bool(os.environ.get("CANON_LLM_BASE_URL") and os.environ.get("CANON_LLM_MODEL"))


def _llm_metrics(embed_query: Callable[[str], Iterable[float]] | None) -> dict[str, Any]:
    base_url, model = os.environ.get("CANON_LLM_BASE_URL"), os.environ.get("CANON_LLM_MODEL")
    if not base_url or not model:
        return {}
    from langchain_core.embeddings import Embeddings
    from langchain_openai import ChatOpenAI
    from ragas.embeddings import LangchainEmbeddingsWrapper
    from ragas.llms import LangchainLLMWrapper
    from ragas.metrics import Faithfulness, ResponseRelevancy

    llm = LangchainLLMWrapper(
        ChatOpenAI(
            base_url=base_url, model=model, api_key=os.environ.get("CANON_LLM_API_KEY", "none")
        )
    )
    metrics: dict[str, Any] = {"ragas_faithfulness": Faithfulness(llm=llm)}
    if embed_query is not None:
        query = embed_query

        class Local(Embeddings):
            def embed_documents(self, texts: list[str]) -> list[list[float]]:
                return [list(map(float, query(t))) for t in texts]

            def embed_query(self, text: str) -> list[float]:
                return list(map(float, query(text)))

        metrics["ragas_answer_relevancy"] = ResponseRelevancy(
            llm=llm, embeddings=LangchainEmbeddingsWrapper(Local())
        )
    return metrics
