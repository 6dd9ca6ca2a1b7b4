// RoPE: rotary position embedding tables in the exact float32 arithmetic of HF transformers'
// default rope (inv_freq = 1 / theta^(2i/Dh) in f32, angle = pos * inv_freq in f32), so logits
// agree with MixtralForCausalLM to float rounding. The rotation itself is hk_rope (rotate_half).

enum RoPE {
    /// [Dh/2]
    static func inverseFrequencies(Dh: Int, theta: Double) -> [Float] {
        let base = Float(theta)
        return (0..<(Dh / 2)).map { i in
            let exponent = Float(2 * i) / Float(Dh)
            return 1 / powf(base, exponent)
        }
    }

    /// cos/sin: [T, Dh/2] for positions pos0..<pos0+T
    static func tables(cos: UnsafeMutablePointer<Float>, sin: UnsafeMutablePointer<Float>,
                       invFreq: [Float], pos0: Int, T: Int) {
        let half = invFreq.count
        for t in 0..<T {
            let p = Float(pos0 + t)
            for i in 0..<half {
                let a = p * invFreq[i]
                cos[t * half + i] = cosf(a)
                sin[t * half + i] = sinf(a)
            }
        }
    }
}
