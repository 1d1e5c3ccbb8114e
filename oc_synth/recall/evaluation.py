"""How good is a round's classifier, measured on pages it was not trained on, and is it good enough to score the
corpus with (the quality gate).

Held-out scores come from k-fold cross-validation on small training sets (every page is scored by a model trained
without its fold, so 42 seeds give 42 held-out positives, not 4) or from a held-out split on large ones (see
``training``). From them: ROC AUC (the chance that a seed outscores a sampled negative: 0.5 is guessing), the score
distribution of both classes, precision and recall at the score threshold, and the calibrated alternative: the
lowest threshold whose held-out precision reaches a target.

The negatives are a sample of the corpus, so some of them are code that the classifier rightly scores high: held-out
precision is a lower bound, and a perfect classifier's AUC is about 1 - c/2 when a share c of the corpus is code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from scipy.stats import mannwhitneyu

from oc_synth.recall.config import GateConfig

HISTOGRAM_BINS = 10


def roc_auc(pos: Sequence[float], neg: Sequence[float]) -> float | None:
    """P(score of a positive > score of a negative), ties counted half: the Mann-Whitney U statistic / (n_pos *
    n_neg). None when a class is empty."""
    if not pos or not neg:
        return None
    return float(mannwhitneyu(pos, neg, alternative="two-sided").statistic) / (len(pos) * len(neg))


def binary_metrics(scores_pos: Sequence[float], scores_neg: Sequence[float], threshold: float) -> dict[str, Any]:
    """Precision/recall/F1 of ``score >= threshold`` on held-out positives and negatives (None when undefined)."""
    tp = sum(s >= threshold for s in scores_pos)
    fn = len(scores_pos) - tp
    fp = sum(s >= threshold for s in scores_neg)
    tn = len(scores_neg) - fp
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else None
    negative_rate = fp / len(scores_neg) if scores_neg else None
    return {"threshold": threshold, "positives": len(scores_pos), "negatives": len(scores_neg), "tp": tp, "fp": fp,
            "fn": fn, "tn": tn, "precision": precision, "recall": recall, "f1": f1, "negative_rate": negative_rate}


def threshold_for_precision(scores_pos: Sequence[float], scores_neg: Sequence[float],
                            target: float) -> dict[str, Any] | None:
    """Metrics at the lowest threshold (the most recall) whose held-out precision is >= ``target``; None when no
    threshold reaches it. Candidate thresholds are the positives' scores."""
    best = None
    for t in sorted(set(scores_pos), reverse=True):
        m = binary_metrics(scores_pos, scores_neg, t)
        if m["precision"] is not None and m["precision"] >= target:
            best = m
    return best


def histogram(scores: Sequence[float], bins: int = HISTOGRAM_BINS) -> list[int]:
    """Counts of scores in [0, 0.1), [0.1, 0.2), ... [0.9, 1.0]."""
    counts = [0] * bins
    for s in scores:
        counts[min(int(s * bins), bins - 1)] += 1
    return counts


def format_metric(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


@dataclass
class Evaluation:
    """Held-out figures of one classifier (written to classifier.json and the round report)."""

    method: str  # "5-fold" or "holdout 10%"
    positives: int
    negatives: int
    auc: float | None
    auc_before_dropping: float | None  # code-like negatives dropped: the first pass's AUC, which the gate judges
    threshold: float  # the threshold the round uses
    at_threshold: dict[str, Any]
    target_precision: float
    calibrated: dict[str, Any] | None  # metrics at the lowest threshold reaching target_precision
    histogram: dict[str, list[int]] = field(default_factory=dict)  # "positives"/"negatives" -> 10 bins
    problems: list[str] = field(default_factory=list)  # why the gate failed; empty: passed

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def evaluate(scores_pos: Sequence[float], scores_neg: Sequence[float], *, method: str, threshold: float,
             target_precision: float, use_calibrated: bool, gate: GateConfig,
             auc_before_dropping: float | None = None) -> Evaluation:
    """Figures and gate verdict. With ``use_calibrated`` the calibrated threshold is the one the round uses.

    ``auc_before_dropping``: when negatives that scored like the seeds were dropped (``training``), the AUC of the
    first pass, over every sampled negative. The gate judges that one: dropping the negatives most like the seeds
    raises the AUC of any classifier, a useless one too."""
    calibrated = threshold_for_precision(scores_pos, scores_neg, target_precision)
    problems = []
    if use_calibrated:
        if calibrated is None:
            problems.append(f"no score threshold reaches held-out precision {target_precision:g} "
                            "(threshold_mode=target_precision)")
        else:
            threshold = calibrated["threshold"]
    at = binary_metrics(scores_pos, scores_neg, threshold)
    auc = roc_auc(scores_pos, scores_neg)
    judged = auc_before_dropping if auc_before_dropping is not None else auc
    if judged is not None and judged < gate.min_auc:
        problems.append(f"held-out ROC AUC {judged:.2f} < gate.min_auc {gate.min_auc:g}: it cannot tell the seed "
                        "pages from pages sampled from the corpus")
    rate = at["negative_rate"]
    if rate is not None and rate > gate.max_negative_rate:
        better = (f"; held-out precision {target_precision:g} needs threshold {calibrated['threshold']:.6g} "
                  f"(--score-threshold, or -s threshold_mode=target_precision)" if calibrated else "")
        problems.append(f"threshold {threshold:.3f} calls {rate:.0%} of held-out negative pages code "
                        f"(> gate.max_negative_rate {gate.max_negative_rate:g}): it would recall the corpus "
                        f"wholesale{better}")
    return Evaluation(method=method, positives=len(scores_pos), negatives=len(scores_neg), auc=auc,
                      auc_before_dropping=auc_before_dropping, threshold=threshold, at_threshold=at,
                      target_precision=target_precision, calibrated=calibrated,
                      histogram={"positives": histogram(scores_pos), "negatives": histogram(scores_neg)},
                      problems=problems)


def summary_line(ev: dict[str, Any]) -> str:
    """One line of held-out figures from an ``Evaluation.to_dict()``, for consoles and logs."""
    at, cal = ev["at_threshold"], ev["calibrated"]
    before = ev.get("auc_before_dropping")
    line = (f"held-out ({ev['method']}, {ev['positives']} pos / {ev['negatives']} neg): ROC AUC "
            f"{format_metric(ev['auc'])}" + (f" ({format_metric(before)} before)" if before is not None else "")
            + f"; at threshold {ev['threshold']:.3f} precision {format_metric(at['precision'])}, recall "
            f"{format_metric(at['recall'])}")
    if cal is not None:
        line += (f"; precision >= {ev['target_precision']:g} at threshold {cal['threshold']:.3f} (recall "
                 f"{format_metric(cal['recall'])})")
    else:
        line += f"; no threshold reaches precision {ev['target_precision']:g}"
    return line
