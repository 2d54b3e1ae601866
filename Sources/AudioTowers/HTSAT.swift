import Foundation
import Numerics

/// The HTSAT audio tower of CLAP without projection: transformers' `ClapAudioEncoder` for the
/// unfused model, eval mode. Features in, `pooler_output` out (the mean over the last stage's
/// tokens after the final layer norm).
///
///     features [frames x mel] -> batch norm -> bicubic stretch to spec_frames -> fold to image
///     -> Conv2d patch embedding (+ LayerNorm) -> stages of Swin blocks with patch merging
///     -> LayerNorm -> mean over tokens
final class HTSATTower: Sendable {
    struct Stage: Sendable {
        let width: Int
        let resolution: HTSATConfiguration.Pair
        let blocks: [SwinBlock]
        /// Window layout of each block (unshifted for even blocks, shifted for odd ones).
        let layouts: [SwinWindowLayout]
        let merging: SwinPatchMerging?
    }

    let configuration: HTSATConfiguration
    let imageBuilder: HTSATImageBuilder
    let patchGeometry: Conv2DGeometry
    let patchWeight: Parameter, patchBias: Parameter
    let patchNorm: (weight: Parameter, bias: Parameter)?
    let stages: [Stage]
    let finalNormWeight: Parameter, finalNormBias: Parameter
    let pool = ScratchPool<Scratch>()
    /// Cores the tower spreads one request over.
    let cores: Int
    /// Rows a chunk of windows aims at (products of about this many rows run near BLAS peak
    /// while the chunk's activations stay in L2).
    let chunkRows = 256
    /// Blocks with fewer windows than this per core divide heads and hidden units among the cores
    /// instead of windows.
    let splitBelow = 2

    /// Reads `prefix + "batch_norm.weight"`, `"patch_embed.proj.weight"`, `"layers.0.blocks.0. ..."`,
    /// `"norm.weight"`, ... (transformers' `ClapAudioEncoder` names; `prefix` is
    /// `"audio_model.audio_encoder."` in a ClapModel state dict).
    init(configuration c: HTSATConfiguration, parameters: ParameterSource, prefix: String,
         cores: Int = CPUQuota.threads) throws {
        func p(_ name: String, _ shape: [Int]) throws -> Parameter {
            try parameters.parameter(prefix + name, shape: shape)
        }
        configuration = c
        self.cores = max(1, cores)
        let mel = c.numMelBins
        imageBuilder = HTSATImageBuilder(configuration: c, weight: try p("batch_norm.weight", [mel]),
                                         bias: try p("batch_norm.bias", [mel]),
                                         mean: try p("batch_norm.running_mean", [mel]),
                                         variance: try p("batch_norm.running_var", [mel]))
        let e = c.embedDim
        patchGeometry = Conv2DGeometry(channels: 1, height: c.imageHeight, width: c.imageWidth,
                                       kernel: (c.patchSize.height, c.patchSize.width),
                                       stride: (c.patchStride.height, c.patchStride.width),
                                       padding: (c.patchPadding.height, c.patchPadding.width))
        patchWeight = try p("patch_embed.proj.weight", [e, 1, c.patchSize.height, c.patchSize.width])
        patchBias = try p("patch_embed.proj.bias", [e])
        patchNorm = c.patchNorm ? (try p("patch_embed.norm.weight", [e]), try p("patch_embed.norm.bias", [e])) : nil

        var stages: [Stage] = []
        for i in 0..<c.stageCount {
            let width = c.width(stage: i), resolution = c.resolution(stage: i)
            // transformers: no shift when the grid is no larger than a window.
            let shifts = min(resolution.height, resolution.width) > c.windowSize
            let plain = SwinWindowLayout(height: resolution.height, width: resolution.width, window: c.windowSize, shift: 0)
            let shifted = shifts
                ? SwinWindowLayout(height: resolution.height, width: resolution.width, window: c.windowSize,
                                   shift: c.windowSize / 2)
                : plain
            let blocks = try (0..<c.depths[i]).map { j in
                try SwinBlock(parameters: parameters, prefix: prefix + "layers.\(i).blocks.\(j).", width: width,
                              heads: c.numHeads[i], window: c.windowSize, mlpWidth: c.mlpWidth(stage: i),
                              qkvBias: c.qkvBias, eps: c.layerNormEps)
            }
            let merging = i < c.stageCount - 1
                ? try SwinPatchMerging(parameters: parameters, prefix: prefix + "layers.\(i).downsample.", width: width)
                : nil
            stages.append(Stage(width: width, resolution: resolution, blocks: blocks,
                                layouts: (0..<c.depths[i]).map { $0 % 2 == 1 ? shifted : plain }, merging: merging))
        }
        self.stages = stages
        finalNormWeight = try p("norm.weight", [c.outputWidth])
        finalNormBias = try p("norm.bias", [c.outputWidth])
    }

    /// The pooled output (`items x outputWidth`) of `items` feature matrices (`frames[i] x mel`).
    /// `observer` sees intermediate tensors (`"patch_embed"`, `"stage0"`, ... after each stage's
    /// merging, as transformers' stage outputs) for debugging and tests.
    func forward(_ features: [UnsafePointer<Float>], frames: [Int],
                 observer: ((String, UnsafeBufferPointer<Float>) -> Void)? = nil) -> [Float] {
        let c = configuration, items = features.count
        guard items > 0 else { return [] }
        let spread = SwinExecution.spread(cores: cores)
        let g = patchGeometry
        let tokens0 = g.positions
        var capacity = 0
        for (i, s) in stages.enumerated() {
            capacity = max(capacity, items * s.resolution.height * s.resolution.width * s.width)
            if s.merging != nil {
                let next = c.resolution(stage: i + 1)
                capacity = max(capacity, items * next.height * next.width * 2 * s.width)
            }
        }
        var x = UnsafeMutablePointer<Float>.allocate(capacity: capacity)
        var y = UnsafeMutablePointer<Float>.allocate(capacity: capacity)
        defer { x.deallocate(); y.deallocate() }

        // Image (per item) and patch embedding (per block of rows).
        let imageSize = c.imageHeight * c.imageWidth
        let images = UnsafeMutablePointer<Float>.allocate(capacity: items * imageSize)
        defer { images.deallocate() }
        spread.forEach(items) { b in
            pool.with(2 * c.specFrames * c.numMelBins) { scratch in
                imageBuilder.image(features: features[b], frames: frames[b], scratch: scratch,
                                   into: images + b * imageSize)
            }
        }
        let e = c.embedDim
        let pieces = SwinExecution.ranges(tokens0, pieces: max(1, min(4 * cores, tokens0 / 64)))
        spread.forEach(items * pieces.count) { task in
            let b = task / pieces.count, rows = pieces[task % pieces.count]
            let out = x + (b * tokens0 + rows.lowerBound) * e
            pool.with(rows.count * g.patchSize) { scratch in
                Conv2D.forward(images + b * imageSize, geometry: g, rows: rows, weight: patchWeight.pointer,
                               bias: patchBias.pointer, outChannels: e, scratch: scratch, into: out)
            }
            if let patchNorm {
                Normalization.layerNorm(out, ldx: e, rows: rows.count, width: e, weight: patchNorm.weight.pointer,
                                         bias: patchNorm.bias.pointer, eps: 1e-5, into: out, ldy: e)
            }
        }
        observer?("patch_embed", UnsafeBufferPointer(start: x, count: items * tokens0 * e))

        for (i, stage) in stages.enumerated() {
            for (block, layout) in zip(stage.blocks, stage.layouts) {
                run(block, layout: layout, on: x, items: items)
            }
            if let merging = stage.merging {
                merging.forward(x, items: items, height: stage.resolution.height, width: stage.resolution.width,
                                into: y, pool: pool, execution: spread)
                swap(&x, &y)
                let next = c.resolution(stage: i + 1)
                observer?("stage\(i)", UnsafeBufferPointer(start: x, count: items * next.height * next.width * 2 * stage.width))
            } else {
                observer?("stage\(i)", UnsafeBufferPointer(start: x, count: items * stage.resolution.height
                                                              * stage.resolution.width * stage.width))
            }
        }

        // Final norm and mean over each item's tokens.
        let last = stages[stages.count - 1]
        let width = last.width, perItem = last.resolution.height * last.resolution.width
        spread.rows(items * perItem) { r in
            Normalization.layerNorm(x + r.lowerBound * width, ldx: width, rows: r.count, width: width,
                                     weight: finalNormWeight.pointer, bias: finalNormBias.pointer, eps: 1e-5,
                                     into: x + r.lowerBound * width, ldy: width)
        }
        var pooled = [Float](repeating: 0, count: items * width)
        for b in 0..<items {
            var sums = [Double](repeating: 0, count: width)
            for t in 0..<perItem {
                let row = x + (b * perItem + t) * width
                for j in 0..<width { sums[j] += Double(row[j]) }
            }
            for j in 0..<width { pooled[b * width + j] = Float(sums[j] / Double(perItem)) }
        }
        return pooled
    }

    /// Runs one block over all windows: with one core, chunk after chunk; with several, chunks of
    /// whole windows in parallel when there are enough windows (at least `splitBelow` per core),
    /// otherwise all windows at once with the heads and hidden units divided among the cores.
    private func run(_ block: SwinBlock, layout: SwinWindowLayout, on x: UnsafeMutablePointer<Float>, items: Int) {
        let n = layout.tokens
        let windows = items * layout.windowsPerItem
        if cores > 1 && windows < splitBelow * cores {
            let split = block.split(parts: cores)
            pool.with(block.scratchSize(split: split, windows: windows, tokens: n)) { scratch in
                block.forwardSplit(x, layout: layout, windows: windows, split: split, scratch: scratch)
            }
            return
        }
        let perChunk = cores > 1 ? max(1, min(chunkRows / n, windows / cores)) : max(1, chunkRows / n)
        let chunks = SwinExecution.ranges(windows, pieces: (windows + perChunk - 1) / perChunk)
        let size = block.scratchSize(windows: chunks.map(\.count).max() ?? 1, tokens: n)
        if cores > 1 {
            Parallel.forEach(chunks.count) { k in
                pool.with(size) { scratch in block.forward(x, layout: layout, windows: chunks[k], scratch: scratch) }
            }
        } else {
            pool.with(size) { scratch in
                for chunk in chunks { block.forward(x, layout: layout, windows: chunk, scratch: scratch) }
            }
        }
    }
}
