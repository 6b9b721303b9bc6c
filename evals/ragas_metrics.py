"""ragas metrics: the non-LLM ones always; faithfulness and answer relevancy only when
an OpenAI-compatible endpoint is configured (`CANON_LLM_BASE_URL`, `CANON_LLM_MODEL`).

The judge's requests time out after `CANON_LLM_TIMEOUT` seconds (default 60) and are
retried once, so a dead or hung endpoint costs the eval seconds, not ragas's default of
180 s x 10 attempts. An endpoint that fails stops the LLM metrics and says so in the
eval's notes; the non-LLM metrics are still reported.
"""

import math
import os
import statistics
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from evals.progress import Report, quiet

# ragas posts usage events to its vendor unless told not to; an eval run on hospital
# content must not phone home (read once, at the first event).
os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")

LLM_METRICS = ("ragas_faithfulness", "ragas_answer_relevancy")
DEFAULT_TIMEOUT = 60.0


def score(
    samples: Sequence[dict[str, Any]],
    *,
    report: Report = quiet,
    embed_query: Callable[[str], Iterable[float]] | None = None,
    notes: list[str] | None = None,
) -> dict[str, float]:
    """Mean of each metric over the samples that carry what the metric needs.

    A sample: `user_input`, `response`, `reference`, `retrieved_contexts`, and
    optionally `reference_contexts`. Why an LLM metric is missing or partial (not
    configured, endpoint failed, unparseable judge output) is appended to `notes`.
    """
    notes = notes if notes is not None else []
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
    if not llm_configured():
        notes.append(
            "ragas faithfulness and answer relevancy skipped: no CANON_LLM_BASE_URL "
            "and CANON_LLM_MODEL"
        )
    metrics |= _llm_metrics(embed_query)
    values: dict[str, list[float]] = {name: [] for name in metrics}
    failed: dict[str, list[str]] = {name: [] for name in metrics}
    unscored: dict[str, int] = dict.fromkeys(metrics, 0)
    for i, raw in enumerate(samples, start=1):
        sample = SingleTurnSample(
            user_input=raw["user_input"],
            response=raw["response"],
            reference=raw["reference"],
            retrieved_contexts=list(raw["retrieved_contexts"]) or [""],
            reference_contexts=list(raw.get("reference_contexts") or []) or None,
        )
        for name, metric in list(metrics.items()):
            if name in ("ragas_context_precision", "ragas_context_recall") and not raw.get(
                "reference_contexts"
            ):
                continue
            if name not in LLM_METRICS:
                values[name].append(float(metric.single_turn_score(sample)))
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    value = float(metric.single_turn_score(sample))
            except Exception as exc:  # any judge failure becomes a note, not a crash
                if _endpoint_error(exc):  # the next sample would only fail the same way
                    for llm_name in LLM_METRICS:
                        metrics.pop(llm_name, None)
                        values.pop(llm_name, None)
                    notes.append(
                        f"ragas faithfulness and answer relevancy stopped at sample {i} of "
                        f"{len(samples)}: the LLM endpoint {_env('CANON_LLM_BASE_URL')} "
                        f"failed ({_describe(exc)})"
                    )
                    break
                failed[name].append(_describe(exc))
                continue
            if math.isnan(value):
                unscored[name] += 1
            else:
                values[name].append(value)
        report("ragas", i, len(samples))
    for name, errors in failed.items():
        if errors and name in values:
            rest = "the mean is over the rest" if values[name] else "not reported"
            notes.append(
                f"{name}: the judge failed on {len(errors)} of {len(samples)} samples "
                f"(first: {errors[0]}); {rest}"
            )
    for name, n in unscored.items():
        if n and name in values:
            notes.append(f"{name}: ragas gave no score (NaN) for {n} of {len(samples)} samples")
    return {name: statistics.fmean(v) for name, v in values.items() if v}


def llm_configured() -> bool:
    return bool(_env("CANON_LLM_BASE_URL") and _env("CANON_LLM_MODEL"))


def _env(name: str) -> str | None:
    return (os.environ.get(name) or "").strip() or None


def _timeout() -> float:
    raw = _env("CANON_LLM_TIMEOUT")
    try:
        timeout = float(raw) if raw else DEFAULT_TIMEOUT
    except ValueError:
        raise ValueError(f"CANON_LLM_TIMEOUT={raw!r}: a number of seconds") from None
    if not timeout > 0:
        raise ValueError(f"CANON_LLM_TIMEOUT={raw!r}: must be more than 0 seconds")
    return timeout


def _endpoint_error(exc: BaseException) -> bool:
    """The endpoint itself failed (unreachable, timed out, HTTP error), not one answer."""
    import openai

    return isinstance(exc, openai.APIError) and not isinstance(
        exc, openai.APIResponseValidationError
    )


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _llm_metrics(embed_query: Callable[[str], Iterable[float]] | None) -> dict[str, Any]:
    base_url, model = _env("CANON_LLM_BASE_URL"), _env("CANON_LLM_MODEL")
    if not base_url or not model:
        return {}
    timeout = _timeout()
    from langchain_core.embeddings import Embeddings
    from langchain_openai import ChatOpenAI
    from pydantic import SecretStr
    from ragas.embeddings import LangchainEmbeddingsWrapper
    from ragas.llms import LangchainLLMWrapper
    from ragas.metrics import Faithfulness, ResponseRelevancy
    from ragas.run_config import RunConfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        llm = LangchainLLMWrapper(
            ChatOpenAI(
                base_url=base_url,
                model=model,
                api_key=SecretStr(_env("CANON_LLM_API_KEY") or "none"),
                timeout=timeout,
                max_retries=1,
            ),
            # The wrapper sets the client's timeout from this, overriding the one above;
            # ragas retries only rate limits with it, the client retries the rest once.
            run_config=RunConfig(timeout=math.ceil(timeout), max_retries=2, max_wait=5),
            # Ask for ResponseRelevancy's questions one request each: many
            # OpenAI-compatible servers ignore `n` and return a single choice.
            bypass_n=True,
        )
    metrics: dict[str, Any] = {"ragas_faithfulness": Faithfulness(llm=llm)}
    if embed_query is not None:
        query = embed_query

        class Local(Embeddings):
            def embed_documents(self, texts: list[str]) -> list[list[float]]:
                return [list(map(float, query(t))) for t in texts]

            def embed_query(self, text: str) -> list[float]:
                return list(map(float, query(text)))

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            embeddings = LangchainEmbeddingsWrapper(Local())
        metrics["ragas_answer_relevancy"] = ResponseRelevancy(llm=llm, embeddings=embeddings)
    return metrics
