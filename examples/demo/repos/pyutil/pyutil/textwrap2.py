"""Greedy and balanced line wrapping for plain text."""


def greedy_wrap(text: str, width: int) -> list:
    """Fill each line with as many words as fit; a word longer than ``width`` gets a line of its own."""
    if width < 1:
        raise ValueError("width must be positive")
    lines, current = [], ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if len(candidate) <= width or not current:
            current = candidate
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    return lines


def balanced_wrap(text: str, width: int) -> list:
    """Minimise the sum of squared trailing spaces over all lines but the last (dynamic programming)."""
    words = text.split()
    n = len(words)
    best = [0.0] * (n + 1)
    split = [n] * (n + 1)
    for i in range(n - 1, -1, -1):
        best[i] = float("inf")
        length = -1
        for j in range(i, n):
            length += len(words[j]) + 1
            if length > width and j > i:
                break
            cost = 0.0 if j == n - 1 else (width - length) ** 2 + best[j + 1]
            if cost < best[i]:
                best[i], split[i] = cost, j + 1
    lines, i = [], 0
    while i < n:
        lines.append(" ".join(words[i:split[i]]))
        i = split[i]
    return lines
