"""LeetCode 20. Valid Parentheses: every bracket closed by the same kind, in the right order."""


class Solution:
    PAIRS = {")": "(", "]": "[", "}": "{"}

    def isValid(self, s: str) -> bool:
        stack = []
        for ch in s:
            if ch in self.PAIRS.values():
                stack.append(ch)
            elif ch in self.PAIRS:
                if not stack or stack.pop() != self.PAIRS[ch]:
                    return False
        return not stack


def check():
    solution = Solution()
    for text, expected in [("()", True), ("()[]{}", True), ("(]", False), ("([)]", False), ("{[]}", True)]:
        assert solution.isValid(text) is expected, text
