"""What the bundled samples say, and how close a transcript came: the word error rate.

The samples are made by ``scripts/make_samples.py`` from these texts (a test keeps the two
in step). The word error rate is the usual one: the fewest word substitutions, insertions
and deletions that turn the transcript into the script, over the script's word count
(0 % is perfect; above 100 % is possible when the transcript adds words).
"""

from __future__ import annotations

import re

__all__ = ["SAMPLE_SCRIPTS", "WordErrors", "word_errors", "words"]

#: sample file name -> the words it speaks.
SAMPLE_SCRIPTS: dict[str, str] = {
    "hello-8k.wav": "Hello, this is a test call. Can you hear me?",
    "digits-8k.wav": "One two three four five.",
    "question-8k.wav": "Hi, I would like to check on my order, please.",
}


def words(text: str) -> list[str]:
    """Lower-case words, punctuation dropped (apostrophes kept: "didn't")."""
    return re.findall(r"[a-z0-9']+", text.lower())


class WordErrors(tuple[int, int]):
    """``(errors, reference_words)``; :attr:`rate` is their ratio."""

    __slots__ = ()

    @property
    def rate(self) -> float:
        return self[0] / self[1] if self[1] else float(self[0] > 0)


def word_errors(reference: str, hypothesis: str) -> WordErrors:
    """Edit distance in words between a script and a transcript, and the script's length."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return WordErrors((row[-1], len(ref)))
