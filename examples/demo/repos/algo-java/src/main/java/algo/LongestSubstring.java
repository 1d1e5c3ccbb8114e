package algo;

import java.util.HashMap;
import java.util.Map;

/** LeetCode 3: the length of the longest substring without repeating characters. */
class Solution {
    public int lengthOfLongestSubstring(String s) {
        Map<Character, Integer> lastSeen = new HashMap<>();
        int best = 0;
        int start = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            Integer previous = lastSeen.get(c);
            if (previous != null && previous >= start) {
                start = previous + 1;
            }
            lastSeen.put(c, i);
            best = Math.max(best, i - start + 1);
        }
        return best;
    }
}
