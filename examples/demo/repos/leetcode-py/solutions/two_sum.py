"""LeetCode 1. Two Sum: indices of the two numbers that add up to the target."""

from typing import List


class Solution:
    def twoSum(self, nums: List[int], target: int) -> List[int]:
        seen = {}
        for index, value in enumerate(nums):
            wanted = target - value
            if wanted in seen:
                return [seen[wanted], index]
            seen[value] = index
        return []


if __name__ == "__main__":
    assert Solution().twoSum([2, 7, 11, 15], 9) == [0, 1]
    assert Solution().twoSum([3, 2, 4], 6) == [1, 2]
