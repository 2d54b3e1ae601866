// swift-tools-version:6.0
// GatedxLSTM conversational emotion recognition: the pipeline is visible in the targets
// (numerics -> model package -> encoders: audio front end -> audio towers (HTSAT, Whisper), and
// tokenizers -> text tower, both towers built of transformer layers -> xLSTM -> gated classifier
// -> dialogical decoder -> conversation -> serving pipeline -> tools: the HTTP service and server,
// and the CLI, which runs the serving pipeline without HTTP). Every target declares exactly the
// modules it imports (Scripts/check-target-imports.sh).
import PackageDescription

let package = Package(
    name: "GatedXLSTMService",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "emotion", targets: ["EmotionCLI"]),
        .executable(name: "emotion-server", targets: ["EmotionServer"]),
        .executable(name: "classifier-bench", targets: ["ClassifierBenchmark"]),
        .executable(name: "whisper-bench", targets: ["WhisperBenchmark"]),
        .executable(name: "roofline-probe", targets: ["RooflineProbe"]),
        .library(name: "GatedXLSTM", targets: ["GatedXLSTM"]),
        .library(name: "DialogicalEmotionDecoder", targets: ["DialogicalEmotionDecoder"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Tests only: reading openapi.yaml to validate responses against it.
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // System-library shims.
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CSndFile", pkgConfig: "sndfile",
                       providers: [.apt(["libsndfile1-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl",
                       providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CSoxr", pkgConfig: "soxr",
                       providers: [.apt(["libsoxr-dev"])]),

        // Hand-written kernels (small-M products against pre-packed weights).
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"])]),

        // The error vocabulary every module speaks: a stable code, a message, and the kind of
        // failure that decides the answer (one table in HTTPServer maps kinds to statuses).
        .target(name: "ErrorVocabulary"),

        // Pipeline: numerics, and the model package every stage loads its weights from.
        .target(name: "Numerics", dependencies: ["CBLAS", "CKernels", "ErrorVocabulary"]),
        .target(name: "ModelPackage", dependencies: ["Numerics", "COpenSSL", "ErrorVocabulary"]),

        // Encoders: a turn's audio and transcript to L2-normalised embeddings of one space.
        // Decode, resample, log-mel windows (CLAP's or Whisper's features).
        .target(name: "AudioFrontEnd", dependencies: ["CSndFile", "CSoxr", "ErrorVocabulary"]),
        .target(name: "Tokenizers", dependencies: ["ErrorVocabulary"]),
        // The transformer encoder layer (post-LN BERT, pre-LN Whisper) both towers are built of.
        .target(name: "TransformerLayers", dependencies: ["Numerics"]),
        // HTSAT and the Whisper encoder (log-mel windows to embeddings), and a clip through the
        // front end and tower its package names (AudioEmbedder).
        .target(name: "AudioTowers", dependencies: ["Numerics", "ModelPackage", "AudioFrontEnd", "TransformerLayers",
                                                   "ErrorVocabulary"]),
        // The transformer text tower (RoBERTa, BERT), and a transcript through the tokenizer and
        // tower its package names (TextEmbedder).
        .target(name: "TextTower", dependencies: ["Numerics", "ModelPackage", "Tokenizers", "TransformerLayers", "ErrorVocabulary"]),

        // Classifier and decoder.
        .target(name: "XLSTM", dependencies: ["Numerics"]),
        .target(name: "GatedXLSTM", dependencies: ["Numerics", "ModelPackage", "XLSTM", "ErrorVocabulary"]),
        .target(name: "DialogicalEmotionDecoder", dependencies: ["ErrorVocabulary"]),
        .target(name: "Conversation", dependencies: ["GatedXLSTM", "DialogicalEmotionDecoder", "ModelPackage", "ErrorVocabulary"]),

        // A model package loaded into a conversation engine (turn embedder, classifier, DED):
        // what the server serves and the CLI evaluates.
        .target(name: "ServingPipeline", dependencies: ["AudioTowers", "TextTower", "ModelPackage", "GatedXLSTM",
                                                        "DialogicalEmotionDecoder", "Conversation", "ErrorVocabulary",
                                                        "Numerics"]),

        // Tools: the HTTP service and server, the command line.
        .target(name: "HTTPServer", dependencies: ["COpenSSL", "ErrorVocabulary"]),
        .target(name: "EmotionService", dependencies: ["ServingPipeline", "Conversation", "GatedXLSTM", "ModelPackage", "Numerics",
                                                       "DialogicalEmotionDecoder", "HTTPServer", "ErrorVocabulary"]),
        .executableTarget(name: "EmotionServer",
                          dependencies: ["EmotionService", "HTTPServer", "Conversation", "Numerics",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "EmotionCLI",
                          dependencies: ["ServingPipeline", "Conversation", "GatedXLSTM", "DialogicalEmotionDecoder",
                                         "ModelPackage", "ErrorVocabulary", "Numerics",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        // Benchmarks (not tests): the Swift side of Benchmarks/*.sh, which run the references too.
        .executableTarget(name: "ClassifierBenchmark",
                          dependencies: ["GatedXLSTM", "ModelPackage", "Numerics"],
                          path: "Benchmarks/ClassifierBenchmark"),
        .executableTarget(name: "RooflineProbe", path: "Benchmarks/RooflineProbe"),
        .executableTarget(name: "WhisperBenchmark", dependencies: ["AudioTowers", "ModelPackage", "Numerics"],
                          path: "Benchmarks/WhisperBenchmark"),

        // Tests: one target per module (TransformerLayers is tested through both towers).
        // Seeded generator, reference comparisons and peak RSS, shared by the numerical test targets.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "NumericsTests", dependencies: ["Numerics", "CKernels", "TestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "AudioFrontEndTests", dependencies: ["AudioFrontEnd", "ModelPackage", "TestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "TokenizersTests", dependencies: ["Tokenizers", "TestSupport"],
                    resources: [.copy("Fixtures")]),
        // AudioPaperSizeTests prints OpenBLAS's core type (CBLAS).
        .testTarget(name: "AudioTowersTests", dependencies: ["AudioTowers", "AudioFrontEnd", "ModelPackage", "Numerics",
                                                             "CBLAS", "TestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "TextTowerTests", dependencies: ["TextTower", "ModelPackage", "Numerics", "TestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "HTTPServerTests", dependencies: ["HTTPServer", "COpenSSL", "ErrorVocabulary", "TestSupport"]),
        .testTarget(name: "ServingPipelineTests", dependencies: ["ServingPipeline", "Conversation", "ModelPackage",
                                                                 "AudioTowers", "ErrorVocabulary", "TestSupport"]),
        .testTarget(name: "EmotionServiceTests", dependencies: ["EmotionService", "HTTPServer", "Conversation", "DialogicalEmotionDecoder", "ModelPackage",
                                                                "Yams", "ConversationTestSupport", "TestSupport"]),
        .target(name: "ConversationTestSupport", dependencies: ["Conversation", "DialogicalEmotionDecoder", "GatedXLSTM", "Numerics"],
                path: "Tests/ConversationTestSupport"),
        .testTarget(name: "ConversationTests", dependencies: ["Conversation", "GatedXLSTM", "DialogicalEmotionDecoder",
                                                              "ConversationTestSupport", "TestSupport"]),
        .testTarget(name: "ModelPackageTests", dependencies: ["ModelPackage", "Numerics", "TestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "XLSTMTests", dependencies: ["XLSTM", "ModelPackage", "Numerics"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "GatedXLSTMTests", dependencies: ["GatedXLSTM", "ModelPackage", "Numerics"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "DialogicalEmotionDecoderTests", dependencies: ["DialogicalEmotionDecoder", "TestSupport"],
                    resources: [.copy("Fixtures")]),
        // Runs the built `emotion` executable in a child process (CLI and default-model tests).
        .target(name: "CLITestSupport", path: "Tests/CLITestSupport"),
        // Also compares `emotion evaluate` with the served answers (EmotionService).
        .testTarget(name: "EmotionCLITests", dependencies: ["EmotionCLI", "EmotionService", "Conversation",
                                                            "DialogicalEmotionDecoder", "CLITestSupport"]),
        // The shipped Models/default: loads as served, reproduces its model card's session-4 text
        // figures with `emotion evaluate` (reads ../shared/data), answers a probe of single turns.
        .testTarget(name: "DefaultModelTests", dependencies: ["EmotionCLI", "ServingPipeline", "Conversation",
                                                              "ModelPackage", "Numerics", "GatedXLSTM", "CLITestSupport",
                                                              "TestSupport"]),
    ]
)
