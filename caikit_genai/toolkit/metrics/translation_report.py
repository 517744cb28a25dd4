"""What a translator's held-out scores say and BLEU hides: how often a translation loops (a run
of words said three times over) and how often it drops a clause (under 60% of the reference's
length), beside sacrebleu's BLEU and chrF."""

from typing import Dict, List, Sequence

import sacrebleu

SHORT_RATIO = 0.6  # a translation under this share of its reference's characters dropped something


def looped(text: str, longest: int = 4) -> bool:
    """A run of 1 to `longest` words repeated three times in a row ("the the the", "a b a b a b")."""
    words = text.split()
    for size in range(1, longest + 1):
        for start in range(len(words) - 3 * size + 1):
            run = words[start : start + size]
            if run == words[start + size : start + 2 * size] == words[start + 2 * size : start + 3 * size]:
                return True
    return False


def translation_report(hypotheses: Sequence[str], references: Sequence[str]) -> Dict[str, float]:
    """BLEU and chrF (sacrebleu defaults), and the shares of looped and short translations."""
    count = max(1, len(hypotheses))
    refs: List[List[str]] = [list(references)]
    return {
        "bleu": round(sacrebleu.corpus_bleu(list(hypotheses), refs).score, 2),
        "chrf": round(sacrebleu.corpus_chrf(list(hypotheses), refs).score, 2),
        "looped": round(sum(looped(text) for text in hypotheses) / count, 4),
        "short": round(sum(len(hyp) < SHORT_RATIO * len(ref) for hyp, ref in zip(hypotheses, references)) / count, 4),
    }
