package algo;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.List;

/** Breadth-first distances on an unweighted graph given as adjacency lists. */
public final class Graphs {
    private Graphs() {}

    public static int[] distances(List<List<Integer>> adjacency, int source) {
        int[] dist = new int[adjacency.size()];
        Arrays.fill(dist, -1);
        Deque<Integer> queue = new ArrayDeque<>();
        dist[source] = 0;
        queue.add(source);
        while (!queue.isEmpty()) {
            int node = queue.poll();
            for (int next : adjacency.get(node)) {
                if (dist[next] < 0) {
                    dist[next] = dist[node] + 1;
                    queue.add(next);
                }
            }
        }
        return dist;
    }

    public static List<List<Integer>> ring(int n) {
        List<List<Integer>> adjacency = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            adjacency.add(List.of((i + 1) % n, (i + n - 1) % n));
        }
        return adjacency;
    }
}
