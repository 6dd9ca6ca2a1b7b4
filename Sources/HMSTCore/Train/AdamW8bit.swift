// AdamW8bit: AdamW with both moments stored in 8 bits, blockwise (256 values per block, each
// block scaled by its absolute maximum, dynamic quantisation maps: signed for m, unsigned for
// v), as bitsandbytes does. Tensors under 4096 elements keep f32 moments (norm weights, tiny
// routers): they cost little and are sensitive. The arithmetic of a step is f32 (CKernels
// hk_adam8bit_update); only storage is 8-bit, so the state is about a quarter of AdamW's.
import CKernels

public final class AdamW8bit: Optimizer {
    public let kind = "adamw8bit"
    public static let minQuantizedElements = 4096
    public let config: AdamWConfig
    let params: any ParameterSet
    let decays: [Bool]
    /// per parameter tensor: offset into the 8-bit arrays and block scales, or into the f32 ones
    let slots: [Slot]
    let mq, vq: ByteBuffer          // [Q]        8-bit codes of the quantised tensors
    let mAbs, vAbs: FloatBuffer     // [Q / 256]  block maxima (rounded up per tensor)
    let mSmall, vSmall: FloatBuffer // [S]        f32 moments of the small tensors
    let mapM, mapV: FloatBuffer     // [256]      signed and unsigned dynamic maps
    let tableM, tableV: ByteBuffer  // [65536]    nearest-code lookup by a float's top 16 bits
    public private(set) var step = 0

    enum Slot { case quantized(code: Int, block: Int), small(Int) }

    public init(params: any ParameterSet, config: AdamWConfig = AdamWConfig()) throws {
        self.params = params
        self.config = config
        decays = params.decayMask
        var s: [Slot] = [], q = 0, blocks = 0, small = 0
        for shape in params.shapes {
            let n = shape.reduce(1, *)
            if n >= AdamW8bit.minQuantizedElements {
                s.append(.quantized(code: q, block: blocks))
                q += n
                blocks += (n + Int(HK_QBLOCK) - 1) / Int(HK_QBLOCK)
            } else {
                s.append(.small(small))
                small += n
            }
        }
        slots = s
        mq = try ByteBuffer(count: q, for: "8-bit AdamW's first moments"); vq = try ByteBuffer(count: q, for: "8-bit AdamW's second moments")
        mAbs = try FloatBuffer(count: blocks, for: "8-bit AdamW's block scales"); vAbs = try FloatBuffer(count: blocks, for: "8-bit AdamW's block scales")
        mSmall = try FloatBuffer(count: small, for: "8-bit AdamW's small tensors"); vSmall = try FloatBuffer(count: small, for: "8-bit AdamW's small tensors")
        mapM = FloatBuffer(count: 256); mapV = FloatBuffer(count: 256)
        hk_dynamic_map(mapM.pointer, 1)
        hk_dynamic_map(mapV.pointer, 0)
        tableM = ByteBuffer(count: 65536); tableV = ByteBuffer(count: 65536)
        hk_quant_table(tableM.pointer, mapM.pointer)
        hk_quant_table(tableV.pointer, mapV.pointer)
        // zero moments: the code of 0 (any code reads 0 while the block maximum is 0)
        let zeroM = UInt8((0..<256).first { mapM.pointer[$0] == 0 } ?? 0)
        mq.pointer.update(repeating: zeroM, count: q)
    }

    public var stateBytes: Int { mq.count + vq.count + (mAbs.count + vAbs.count + mSmall.count + vSmall.count) * 4 }

    public func update(lr: Float, gradScale: Float) {
        step += 1
        let c = config
        forEachTensor(params, decays: decays, config: c, step: step) { t, start, n, wd, bc1, bc2 in
            let p = params.values.pointer + start, g = params.grads.pointer + start
            switch slots[t] {
            case let .small(o):
                AdamW.updateF32(p: p, g: g, m: mSmall.pointer + o, v: vSmall.pointer + o, n: n, c: c, lr: lr, wd: wd, bc1: bc1, bc2: bc2, scale: gradScale)
            case let .quantized(code, block):
                var a = hk_adam_params(beta1: c.beta1, beta2: c.beta2, eps: c.eps, lr: lr, weight_decay: wd, bc1: bc1, bc2: bc2, grad_scale: gradScale)
                let nBlocks = (n + Int(HK_QBLOCK) - 1) / Int(HK_QBLOCK)
                let ranges = splitRange(nBlocks, parts: min(Threads.count, max(1, nBlocks / 16)))
                parallelFor(ranges.count) { i in
                    hk_adam8bit_update(p, g, mq.pointer + code, vq.pointer + code, mAbs.pointer + block, vAbs.pointer + block,
                                       ranges[i].lowerBound, ranges[i].upperBound, n, mapM.pointer, mapV.pointer,
                                       tableM.pointer, tableV.pointer, &a)
                }
            }
        }
    }

    public func stateTensors() -> [RawTensor] {
        [mq.raw("adamw8bit.m_codes", dtype: .u8), vq.raw("adamw8bit.v_codes", dtype: .u8),
         mAbs.raw("adamw8bit.m_absmax", dtype: .f32), vAbs.raw("adamw8bit.v_absmax", dtype: .f32),
         mSmall.raw("adamw8bit.m_small", dtype: .f32), vSmall.raw("adamw8bit.v_small", dtype: .f32)]
    }

    public func loadState(_ file: SafeTensorsFile, step: Int) throws {
        try file.copy("adamw8bit.m_codes", dtype: .u8, count: mq.count, to: mq.pointer)
        try file.copy("adamw8bit.v_codes", dtype: .u8, count: vq.count, to: vq.pointer)
        for (name, b) in [("adamw8bit.m_absmax", mAbs), ("adamw8bit.v_absmax", vAbs), ("adamw8bit.m_small", mSmall), ("adamw8bit.v_small", vSmall)] {
            try file.copy(name, dtype: .f32, count: b.count, to: b.pointer)
        }
        self.step = step
    }
}

typealias ByteBuffer = AlignedBuffer<UInt8>
