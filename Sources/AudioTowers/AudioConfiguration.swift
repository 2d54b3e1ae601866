/// Sizes of the HTSAT audio tower and its projection: the tower's keys of the `audio` section of
/// `model.json`. Key names are those of transformers' `ClapAudioConfig` (so a checkpoint's
/// `config.json` `audio_config` converts by copying); the audio front-end reads its own keys
/// (sample rate, window, hop, ...) from the same section and shares `num_mel_bins`.
///
/// Only the unfused model (`enable_fusion: false`, LAION `clap-htsat-unfused`) is supported.
public struct HTSATConfiguration: Codable, Sendable, Equatable {
    /// A size given as one integer or as `[height, width]`.
    public struct Pair: Codable, Sendable, Equatable {
        public var height: Int
        public var width: Int
        public init(_ height: Int, _ width: Int) { self.height = height; self.width = width }
        public init(_ both: Int) { self.init(both, both) }

        public init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let value = try? container.decode(Int.self) {
                self.init(value)
                return
            }
            let list = try container.decode([Int].self)
            guard list.count == 2 else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "expected an integer or [height, width]")
            }
            self.init(list[0], list[1])
        }

        public func encode(to encoder: Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode([height, width])
        }
    }

    /// Mel bins of the input features (64).
    public var numMelBins: Int
    /// Side of the square spectrogram image (256): `spec_size * freq_ratio` frames are folded into
    /// `freq_ratio` bands of `num_mel_bins` rows, `freq_ratio = spec_size / num_mel_bins`.
    public var specSize: Int
    public var patchSize: Pair
    public var patchStride: Pair
    /// Width of the patch embedding and first stage (96); doubles at every patch merging.
    public var embedDim: Int
    public var depths: [Int]
    public var numHeads: [Int]
    public var windowSize: Int
    public var mlpRatio: Double
    public var qkvBias: Bool
    /// LayerNorm after the patch embedding.
    public var patchNorm: Bool
    /// Epsilon of the blocks' layer norms (the patch, merging and final norms use PyTorch's 1e-5,
    /// as transformers does).
    public var layerNormEps: Double
    /// Output width of the projection MLP (512).
    public var projectionDim: Int
    /// The tower's output width, `embed_dim * 2^(stages - 1)`; optional in the manifest, checked when given.
    public var hiddenSize: Int?
    public var hiddenAct: String
    public var projectionHiddenAct: String
    public var enableFusion: Bool
    /// The front-end's `n_mels` when the section gives it (AudioFrontEnd reads it); when
    /// `num_mel_bins` is absent it is taken from here, and the two must agree.
    public var frontEndMelBins: Int?

    public init(numMelBins: Int = 64, specSize: Int = 256, patchSize: Pair = Pair(4), patchStride: Pair = Pair(4),
                embedDim: Int = 96, depths: [Int] = [2, 2, 6, 2], numHeads: [Int] = [4, 8, 16, 32],
                windowSize: Int = 8, mlpRatio: Double = 4, qkvBias: Bool = true, patchNorm: Bool = true,
                layerNormEps: Double = 1e-5, projectionDim: Int = 512, hiddenSize: Int? = nil,
                hiddenAct: String = "gelu", projectionHiddenAct: String = "relu", enableFusion: Bool = false) {
        self.numMelBins = numMelBins
        self.specSize = specSize
        self.patchSize = patchSize
        self.patchStride = patchStride
        self.embedDim = embedDim
        self.depths = depths
        self.numHeads = numHeads
        self.windowSize = windowSize
        self.mlpRatio = mlpRatio
        self.qkvBias = qkvBias
        self.patchNorm = patchNorm
        self.layerNormEps = layerNormEps
        self.projectionDim = projectionDim
        self.hiddenSize = hiddenSize
        self.hiddenAct = hiddenAct
        self.projectionHiddenAct = projectionHiddenAct
        self.enableFusion = enableFusion
    }

    /// HTSAT-tiny as in LAION `clap-htsat-unfused` (transformers' `ClapAudioConfig()` defaults).
    public static let paper = HTSATConfiguration(hiddenSize: 768)

    enum CodingKeys: String, CodingKey {
        case numMelBins = "num_mel_bins"
        case specSize = "spec_size"
        case patchSize = "patch_size"
        case patchStride = "patch_stride"
        case embedDim = "patch_embeds_hidden_size"
        case depths
        case numHeads = "num_attention_heads"
        case windowSize = "window_size"
        case mlpRatio = "mlp_ratio"
        case qkvBias = "qkv_bias"
        case patchNorm = "enable_patch_layer_norm"
        case layerNormEps = "layer_norm_eps"
        case projectionDim = "projection_dim"
        case hiddenSize = "hidden_size"
        case hiddenAct = "hidden_act"
        case projectionHiddenAct = "projection_hidden_act"
        case enableFusion = "enable_fusion"
        case frontEndMelBins = "n_mels"
    }

    /// Missing keys take the paper-size defaults, so a section may name only what differs.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = HTSATConfiguration.paper
        frontEndMelBins = try c.decodeIfPresent(Int.self, forKey: .frontEndMelBins)
        numMelBins = try c.decodeIfPresent(Int.self, forKey: .numMelBins) ?? frontEndMelBins ?? d.numMelBins
        specSize = try c.decodeIfPresent(Int.self, forKey: .specSize) ?? d.specSize
        patchSize = try c.decodeIfPresent(Pair.self, forKey: .patchSize) ?? d.patchSize
        patchStride = try c.decodeIfPresent(Pair.self, forKey: .patchStride) ?? d.patchStride
        embedDim = try c.decodeIfPresent(Int.self, forKey: .embedDim) ?? d.embedDim
        depths = try c.decodeIfPresent([Int].self, forKey: .depths) ?? d.depths
        numHeads = try c.decodeIfPresent([Int].self, forKey: .numHeads) ?? d.numHeads
        windowSize = try c.decodeIfPresent(Int.self, forKey: .windowSize) ?? d.windowSize
        mlpRatio = try c.decodeIfPresent(Double.self, forKey: .mlpRatio) ?? d.mlpRatio
        qkvBias = try c.decodeIfPresent(Bool.self, forKey: .qkvBias) ?? d.qkvBias
        patchNorm = try c.decodeIfPresent(Bool.self, forKey: .patchNorm) ?? d.patchNorm
        layerNormEps = try c.decodeIfPresent(Double.self, forKey: .layerNormEps) ?? d.layerNormEps
        projectionDim = try c.decodeIfPresent(Int.self, forKey: .projectionDim) ?? d.projectionDim
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize)
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? d.hiddenAct
        projectionHiddenAct = try c.decodeIfPresent(String.self, forKey: .projectionHiddenAct) ?? d.projectionHiddenAct
        enableFusion = try c.decodeIfPresent(Bool.self, forKey: .enableFusion) ?? d.enableFusion
    }

    // MARK: - Derived sizes

    public var stageCount: Int { depths.count }
    /// `spec_size / num_mel_bins` (4): how many time bands are stacked in the image.
    public var freqRatio: Int { numMelBins > 0 ? specSize / numMelBins : 0 }
    /// Frames the spectrogram is interpolated to before folding: `spec_size * freq_ratio` (1024).
    public var specFrames: Int { specSize * freqRatio }
    /// Rows of the folded image: `num_mel_bins * freq_ratio` (256).
    public var imageHeight: Int { numMelBins * freqRatio }
    /// Columns of the folded image: `spec_frames / freq_ratio` (256).
    public var imageWidth: Int { freqRatio > 0 ? specFrames / freqRatio : 0 }
    /// Patch grid of the first stage (64 x 64), as transformers computes it (`spec_size // stride`).
    public var grid: Pair { Pair(specSize / max(patchStride.height, 1), specSize / max(patchStride.width, 1)) }
    /// Channels of stage `i`.
    public func width(stage i: Int) -> Int { embedDim << i }
    /// Token grid of stage `i`.
    public func resolution(stage i: Int) -> Pair { Pair(grid.height >> i, grid.width >> i) }
    public func mlpWidth(stage i: Int) -> Int { Int(mlpRatio * Double(width(stage: i))) }
    /// Output width of the tower, `embed_dim * 2^(stages - 1)` (768).
    public var outputWidth: Int { width(stage: max(stageCount - 1, 0)) }
    /// Padding of the patch convolution, `(patch - stride) / 2` per axis.
    public var patchPadding: Pair {
        Pair((patchSize.height - patchStride.height) / 2, (patchSize.width - patchStride.width) / 2)
    }

    /// The first inconsistency, as a message naming the key, or nil. Mirrors what transformers'
    /// ClapAudioModel accepts (it fails at run time on the rest).
    public func validationError() -> String? {
        if enableFusion { return "enable_fusion: the fused model is not supported" }
        if numMelBins < 1 || specSize < 1 { return "num_mel_bins and spec_size must be positive" }
        if let frontEndMelBins, frontEndMelBins != numMelBins {
            return "num_mel_bins (\(numMelBins)) differs from the front-end's n_mels (\(frontEndMelBins))"
        }
        if specSize % numMelBins != 0 {
            return "spec_size (\(specSize)) must be a multiple of num_mel_bins (\(numMelBins))"
        }
        for (name, p) in [("patch_size", patchSize), ("patch_stride", patchStride)] where p.height < 1 || p.width < 1 {
            return "\(name) must be positive"
        }
        if patchSize.height < patchStride.height || patchSize.width < patchStride.width {
            return "patch_size must be at least patch_stride"
        }
        if embedDim < 1 { return "patch_embeds_hidden_size must be positive" }
        if depths.isEmpty || depths.contains(where: { $0 < 1 }) { return "depths must be a non-empty list of positive integers" }
        if numHeads.count != depths.count { return "num_attention_heads must have one entry per stage (\(depths.count))" }
        if windowSize < 1 { return "window_size must be positive" }
        if !(mlpRatio > 0) || !mlpRatio.isFinite { return "mlp_ratio must be positive" }
        if !(layerNormEps > 0) || !layerNormEps.isFinite { return "layer_norm_eps must be positive" }
        if projectionDim < 1 { return "projection_dim must be positive" }
        if hiddenAct != "gelu" { return "hidden_act '\(hiddenAct)' is not supported (gelu)" }
        if projectionHiddenAct != "relu" { return "projection_hidden_act '\(projectionHiddenAct)' is not supported (relu)" }
        let down = 1 << (stageCount - 1)
        let g = grid
        if specSize % patchStride.height != 0 || specSize % patchStride.width != 0 {
            return "spec_size (\(specSize)) must be a multiple of patch_stride"
        }
        let conv = Pair((imageHeight + 2 * patchPadding.height - patchSize.height) / patchStride.height + 1,
                        (imageWidth + 2 * patchPadding.width - patchSize.width) / patchStride.width + 1)
        if conv != g {
            return "patch_size/patch_stride give a \(conv.height)x\(conv.width) patch grid, expected \(g.height)x\(g.width)"
        }
        if g.height % down != 0 || g.width % down != 0 {
            return "the patch grid \(g.height)x\(g.width) must be divisible by 2^(stages-1) = \(down)"
        }
        // transformers regroups the last stage's rows into bands of `rows / freq_ratio` before pooling.
        let lastRows = resolution(stage: stageCount - 1).height
        let band = lastRows / freqRatio
        if band < 1 || lastRows % band != 0 {
            return "the last stage's \(lastRows) rows cannot be grouped into freq_ratio (\(freqRatio)) bands"
        }
        for i in 0..<stageCount {
            let r = resolution(stage: i)
            if min(r.height, r.width) < windowSize {
                return "stage \(i): resolution \(r.height)x\(r.width) is smaller than window_size \(windowSize)"
            }
            if width(stage: i) % numHeads[i] != 0 {
                return "stage \(i): width \(width(stage: i)) is not divisible by num_attention_heads \(numHeads[i])"
            }
            if mlpWidth(stage: i) < 1 { return "stage \(i): mlp width must be positive" }
        }
        if let hiddenSize, hiddenSize != outputWidth {
            return "hidden_size (\(hiddenSize)) must equal patch_embeds_hidden_size * 2^(stages-1) = \(outputWidth)"
        }
        return nil
    }

    /// Parameters of the tower and projection (float tensors of the state dict).
    public var parameterCount: Int {
        let w = windowSize
        var n = 4 * numMelBins  // batch norm
        n += embedDim * patchSize.height * patchSize.width + embedDim + (patchNorm ? 2 * embedDim : 0)
        for i in 0..<stageCount {
            let c = width(stage: i), h = mlpWidth(stage: i)
            let block = 4 * c + (2 * w - 1) * (2 * w - 1) * numHeads[i] + 3 * c * c + (qkvBias ? 3 * c : 0)
                + c * c + c + c * h + h + h * c + c
            n += depths[i] * block
            if i < stageCount - 1 { n += 8 * c + 4 * c * 2 * c }
        }
        n += 2 * outputWidth
        n += outputWidth * projectionDim + projectionDim + projectionDim * projectionDim + projectionDim
        return n
    }
}
