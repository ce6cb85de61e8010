"""Did-you-mean for a mistyped name: a loss (``msee``, ``MSE``), a config key (``lr``).

Plain functions over strings; of ce_lab they import only ``ce_lab.shown`` (a leaf), so any
module (the registry, the config, the CLI) can ask for a suggestion without an import cycle.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from ce_lab.shown import quoted


def closest(word: str, choices: Iterable[str], cutoff: float = 0.75) -> str | None:
    """The choice ``word`` most likely meant, or None.

    A choice equal to it but for case wins when exactly one is (``MSE`` -> ``mse``); two such
    choices are ambiguous, and nothing is guessed. Otherwise difflib's closest match, compared
    case-insensitively (``Msee`` -> ``mse``), if close enough (ratio ``cutoff``): a guess that is
    far off misleads more than the list of valid names (``softmax`` is not ``double-softmax``).
    """
    choices = list(dict.fromkeys(choices))
    folded = [c for c in choices if c.casefold() == word.casefold()]
    if folded:
        return folded[0] if len(folded) == 1 else None
    by_fold = {c.casefold(): c for c in choices}
    near = difflib.get_close_matches(word.casefold(), list(by_fold), n=1, cutoff=cutoff)
    return by_fold[near[0]] if near else None


def by_last_parts(key: str, dotted: Iterable[str]) -> list[str]:
    """The dotted keys ``key`` is the tail of, at a dot (``lr`` -> ``optim.lr``; ``name`` ->
    ``loss.name``, ``optim.name``, ...), compared case-insensitively, in their order."""
    tail = "." + key.casefold()
    return [k for k in dotted if k.casefold().endswith(tail)]


def unknown_name(what: str, names: Sequence[str], valid: Sequence[str],
                 plural: str | None = None) -> str:
    """One line for names that are not among ``valid``.

    One name with a likely meaning: ``unknown loss 'msee' — did you mean 'mse'?``; otherwise the
    valid names are listed, each unknown name with its guess where it has one:
    ``unknown losses 'msee' (did you mean 'mse'?), 'foo'; valid losses: ce, mse, ...``.
    """
    plural = plural or (f"{what}es" if what.endswith("s") else f"{what}s")
    guesses = [closest(n, valid) for n in names]
    if len(names) == 1 and guesses[0] is not None:
        return f"unknown {what} {quoted(names[0])} — did you mean {guesses[0]!r}?"
    shown = ", ".join(f"{quoted(n)} (did you mean {g!r}?)" if g else quoted(n)
                      for n, g in zip(names, guesses))
    return f"unknown {what if len(names) == 1 else plural} {shown}; valid {plural}: {', '.join(valid)}"
