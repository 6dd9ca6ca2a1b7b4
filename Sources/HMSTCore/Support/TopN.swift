// TopN: the n largest values of a Float array, largest first, ties by the smaller index, NaNs
// skipped. A heap of the best n so far whose root is the worst of them, so most values cost one
// comparison: O(count + n log n), where sorting everything was O(count log count). When n is
// most of the array, sorting it all is cheaper, and done. Used by the sampler (top-k and the
// top-p selection) and by Stage 2's retrieved distractors.

public enum TopN {
    /// Indices of the n largest of v[0..<count] (fewer when fewer are not NaN), largest first.
    public static func largest(_ v: UnsafePointer<Float>, count: Int, n: Int) -> [Int] {
        guard n > 0, count > 0 else { return [] }
        // "a ranks after b": a smaller value, or an equal one at a larger index
        @inline(__always) func worse(_ a: Int, _ b: Int) -> Bool { v[a] < v[b] || (v[a] == v[b] && a > b) }
        if n * 8 >= count {
            // values beside their indices: the sort reads no pointer
            var all: [(v: Float, i: Int32)] = []
            all.reserveCapacity(count)
            for i in 0..<count where !v[i].isNaN { all.append((v[i], Int32(i))) }
            all.sort { $0.v > $1.v || ($0.v == $1.v && $0.i < $1.i) }
            return all.prefix(n).map { Int($0.i) }
        }
        var heap: [Int] = []
        heap.reserveCapacity(n)
        for i in 0..<count where !v[i].isNaN {
            if heap.count < n {
                heap.append(i)
                var c = heap.count - 1
                while c > 0 {
                    let p = (c - 1) / 2
                    guard worse(heap[c], heap[p]) else { break }
                    heap.swapAt(c, p)
                    c = p
                }
            } else if worse(heap[0], i) {
                heap[0] = i
                var j = 0
                while true {
                    let l = 2 * j + 1, r = l + 1
                    var m = j
                    if l < n, worse(heap[l], heap[m]) { m = l }
                    if r < n, worse(heap[r], heap[m]) { m = r }
                    if m == j { break }
                    heap.swapAt(j, m)
                    j = m
                }
            }
        }
        heap.sort { worse($1, $0) }
        return heap
    }
}
