// swift-tools-version:6.0
// GatedxLSTM conversational emotion recognition: the pipeline is visible in the targets
// (numerics -> model package -> xLSTM -> gated classifier -> dialogical decoder -> tools).
import PackageDescription

let package = Package(
    name: "GatedXLSTMService",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "emotion", targets: ["EmotionCLI"]),
        .executable(name: "emotion-server", targets: ["EmotionServer"]),
        .executable(name: "classifier-bench", targets: ["ClassifierBenchmark"]),
        .executable(name: "whisper-bench", targets: ["WhisperBenchmark"]),
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

        // Pipeline.
        .target(name: "Numerics", dependencies: ["CBLAS", "CKernels"]),
        .target(name: "ModelPackage", dependencies: ["Numerics", "COpenSSL"]),
        .target(name: "AudioFrontEnd", dependencies: ["Numerics", "CSndFile", "CSoxr"]),
        .target(name: "Tokenizers"),
        .target(name: "CLAP", dependencies: ["Numerics", "ModelPackage", "AudioFrontEnd", "Tokenizers"]),
        .target(name: "XLSTM", dependencies: ["Numerics"]),
        .target(name: "Conversation", dependencies: ["GatedXLSTM", "DialogicalEmotionDecoder"]),
        .target(name: "HTTPServer", dependencies: ["COpenSSL"]),
        .target(name: "EmotionService", dependencies: ["Conversation", "GatedXLSTM", "DialogicalEmotionDecoder", "CLAP",
                                                       "ModelPackage", "HTTPServer"]),
        .executableTarget(name: "EmotionServer",
                          dependencies: ["EmotionService", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .target(name: "GatedXLSTM", dependencies: ["Numerics", "ModelPackage", "XLSTM"]),
        .target(name: "DialogicalEmotionDecoder"),
        .executableTarget(name: "EmotionCLI",
                          dependencies: ["GatedXLSTM", "DialogicalEmotionDecoder", "ModelPackage", "CLAP",
                                         "Conversation", "EmotionService",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        // Benchmarks (not tests): the Swift side of Benchmarks/*.sh, which run the references too.
        .executableTarget(name: "ClassifierBenchmark",
                          dependencies: ["GatedXLSTM", "ModelPackage", "Numerics"],
                          path: "Benchmarks/ClassifierBenchmark"),
        .executableTarget(name: "WhisperBenchmark", dependencies: ["CLAP", "ModelPackage", "Numerics"],
                          path: "Benchmarks/WhisperBenchmark"),

        // Tests: one target per module.
        // Seeded generator and reference comparisons shared by the numerical test targets.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "NumericsTests", dependencies: ["Numerics", "TestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "AudioFrontEndTests", dependencies: ["AudioFrontEnd", "ModelPackage", "TestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "TokenizersTests", dependencies: ["Tokenizers", "TestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "CLAPTests", dependencies: ["CLAP", "ModelPackage", "Numerics", "TestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "HTTPServerTests", dependencies: ["HTTPServer"]),
        .testTarget(name: "EmotionServiceTests", dependencies: ["EmotionService", "Conversation", "GatedXLSTM", "Numerics",
                                                                "DialogicalEmotionDecoder", "Yams", "ConversationTestSupport"]),
        .target(name: "ConversationTestSupport", dependencies: ["Conversation", "GatedXLSTM", "Numerics"],
                path: "Tests/ConversationTestSupport"),
        .testTarget(name: "ConversationTests", dependencies: ["Conversation", "GatedXLSTM", "Numerics",
                                                              "DialogicalEmotionDecoder", "ConversationTestSupport"]),
        .testTarget(name: "ModelPackageTests", dependencies: ["ModelPackage", "TestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "XLSTMTests", dependencies: ["XLSTM", "ModelPackage", "Numerics"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "GatedXLSTMTests", dependencies: ["GatedXLSTM", "ModelPackage"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "DialogicalEmotionDecoderTests", dependencies: ["DialogicalEmotionDecoder", "TestSupport"],
                    resources: [.copy("Fixtures")]),
        // Runs the built `emotion` executable in a child process (CLI and default-model tests).
        .target(name: "CLITestSupport", path: "Tests/CLITestSupport"),
        .testTarget(name: "EmotionCLITests", dependencies: ["EmotionCLI", "EmotionService", "Conversation",
                                                            "DialogicalEmotionDecoder", "CLITestSupport"]),
        // The shipped Models/default: loads as served, reproduces its model card's session-4 text
        // figures with `emotion evaluate` (reads ../shared/data), answers a probe of single turns.
        .testTarget(name: "DefaultModelTests", dependencies: ["EmotionCLI", "EmotionService", "Conversation",
                                                              "ModelPackage", "CLITestSupport"]),
    ]
)
