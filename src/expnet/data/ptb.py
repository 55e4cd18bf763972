"""A small PTB tree reader for the Stanford Sentiment Treebank, and SST word rationales.

SST ships one bracketed tree a line, every node labelled 0-4 (0 very negative, 2 neutral,
4 very positive), e.g. ``(3 (2 it) (4 (2 's) (3 good)))``. We only need labels and word spans,
so a 60-line parser beats a dependency on nltk or pytreebank.

Word rationales (Carton et al. 2020, also used by ferret): a phrase *explains* the sentiment when
its strength ``|label - 2|`` exceeds that of every one of its descendants (a word node has no
descendants, so it always qualifies). Walking down from the root, the top-most explaining phrases
are taken and every word in one gets ``|label - 2| / 2``, a graded value in {0, 0.5, 1}.

Binarisation rule (``binary_rationale``): a word is a rationale word when its graded value is
``>= 0.5``, i.e. it lies in a top-most explaining phrase that is not neutral. This is the rule of
the public re-implementations of Carton et al.'s SST processing (``0 if r < 0.5 else 1``).
The alternative, keeping only very strong phrases (value 1), gives about a quarter of the
sentences an empty mask, and an empty gold rationale cannot be scored. Measured on the full
treebank (mean per-sentence fraction of rationale words; word-level fraction in brackets):

==============================================  ===============  ============================
split                                           ``>= 0.5``       ``== 1`` (empty masks)
==============================================  ===============  ============================
train trees, non-neutral root (6,920)           43.7% (42.1%)    25.5% (24.4%), 24.1% empty
GLUE dev sentences matched to dev trees (872)   44.5% (43.6%)    26.0% (25.7%), 22.3% empty
==============================================  ===============  ============================

With ``>= 0.5`` no sentence with a non-neutral root gets an empty mask. For comparison,
HateXplain's majority masks cover about a third of the words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The treebank escapes brackets and slashes inside words; GLUE's SST-2 text has them plain.
PTB_ESCAPES = {"-LRB-": "(", "-RRB-": ")", "-LSB-": "[", "-RSB-": "]", "-LCB-": "{", "-RCB-": "}"}
BINARY_THRESHOLD = 0.5
NEUTRAL = 2

# Split on ASCII whitespace only: a few treebank words hold a no-break space ("2\u00a01\/2").
_TOKEN = re.compile(r"\(|\)|[^ \t\r\n()]+")


@dataclass(frozen=True)
class Node:
    """One tree node: sentiment ``label`` and the word span ``[start, end)`` it covers."""

    label: int
    start: int
    end: int
    children: tuple[Node, ...] = ()
    word: str | None = None  # set on word (pre-terminal) nodes only

    @property
    def is_leaf(self) -> bool:
        return not self.children


def parse_tree(text: str) -> Node:
    """Parse one bracketed tree; raises ``ValueError`` with a one-line reason when malformed.

    Iterative (an explicit stack) so deep trees cannot hit Python's recursion limit.
    """
    tokens = _TOKEN.findall(text)
    stack: list[list] = []  # frames: [label, start, children, word]
    root: Node | None = None
    n_words = 0
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "(":
            if root is not None:
                raise ValueError("text after the tree's closing bracket; give one tree a line")
            label = tokens[i + 1] if i + 1 < len(tokens) else ")"
            if not re.fullmatch(r"-?\d+", label):
                raise ValueError(f"node label {label!r} is not an integer; SST nodes read '(3 ...)'")
            if stack and stack[-1][3] is not None:
                raise ValueError("a node holds both a word and sub-trees")
            stack.append([int(label), n_words, [], None])
            i += 2
        elif tok == ")":
            if not stack:
                raise ValueError("unbalanced ')'; check the brackets")
            label, start, children, word = stack.pop()
            if not children and word is None:
                raise ValueError("empty node '(label)'; every node needs a word or sub-trees")
            node = Node(label, start, n_words, tuple(children), word)
            if stack:
                stack[-1][2].append(node)
            else:
                root = node
            i += 1
        else:
            if not stack:
                raise ValueError(f"word {tok!r} outside any bracket")
            frame = stack[-1]
            if frame[2] or frame[3] is not None:
                raise ValueError(f"word {tok!r} follows another word or sub-tree in one node")
            frame[3] = tok
            n_words += 1
            i += 1
    if stack or root is None:
        raise ValueError("unbalanced '('; the tree is not closed")
    return root


def iter_nodes(root: Node):
    """All nodes, pre-order (parents before children, left to right)."""
    todo = [root]
    while todo:
        node = todo.pop()
        yield node
        todo.extend(reversed(node.children))


def leaves(root: Node, unescape: bool = False) -> list[str]:
    """The words, left to right; ``unescape`` turns ``-LRB-``/``\\/``-style escapes back."""
    words = [n.word for n in iter_nodes(root) if n.is_leaf]
    return [unescape_word(w) for w in words] if unescape else words


def unescape_word(word: str) -> str:
    """``-LRB-`` -> ``(``, ``\\/`` -> ``/``, ``\\*`` -> ``*`` (how GLUE's SST-2 writes them).

    A no-break space inside a word becomes ``-`` so that ``" ".join(words).split()`` gives the
    words back one for one (``str.split`` would cut at it and misalign the masks).
    """
    word = PTB_ESCAPES.get(word, word)
    word = word.replace("\\/", "/").replace("\\*", "*")
    return re.sub(r"\s+", "-", word)


def _strength(node: Node) -> int:
    return abs(node.label - NEUTRAL)


def graded_rationale(root: Node) -> list[float]:
    """Carton et al.'s graded word rationale: ``|label-2|/2`` of each word's explaining phrase."""
    # Strongest |label-2| strictly below each node (-1 for words: nothing below them).
    below: dict[int, int] = {}
    for node in reversed(list(iter_nodes(root))):  # children before parents
        below[id(node)] = max((max(_strength(c), below[id(c)]) for c in node.children), default=-1)
    values = [0.0] * root.end
    todo = [root]
    while todo:
        node = todo.pop()
        if node.is_leaf or _strength(node) > below[id(node)]:
            for k in range(node.start, node.end):
                values[k] = _strength(node) / 2
        else:
            todo.extend(node.children)
    return values


def binary_rationale(root: Node, threshold: float = BINARY_THRESHOLD) -> list[int]:
    """0/1 word mask: graded value ``>= threshold`` (0.5: any non-neutral explaining phrase)."""
    return [int(v >= threshold) for v in graded_rationale(root)]
