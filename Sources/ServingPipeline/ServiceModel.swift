import Conversation
import DialogicalEmotionDecoder
import Foundation
import GatedXLSTM
import ModelPackage
import Numerics

/// A model package loaded into the serving pipeline: turn embedder + gated classifier + DED
/// parameters in a conversation engine. The server (EmotionService's `ServiceHost`) and offline
/// evaluation (`emotion evaluate`) load models through this one function, so both run the same code.
public struct ServiceModel: Sendable {
    public let package: ModelPackage
    public let engine: ConversationEngine
    public let description: ModelDescription

    /// Loads and checks the package (weights checksummed, every tensor claimed by a stage).
    /// `maxAudioSeconds`: longer clips are refused (`audio_too_long`). `weightPrecision`
    /// overrides the package's `weight_precision` (`ModelPackage.load`).
    public static func load(directory: URL, conversation: ConversationConfiguration = ConversationConfiguration(),
                            maxAudioSeconds: Double, weightPrecision: Linear.Precision? = nil) throws -> ServiceModel {
        let package = try ModelPackage.load(directory: directory, weightPrecision: weightPrecision)
        let classifier = try GatedXLSTMClassifier(package: package)
        let embedder = try TurnEmbedder(package: package, maxAudioSeconds: maxAudioSeconds)
        try package.weights.requireAllClaimed()
        let ded = try package.section("ded", as: DEDParameters.self)
        let engine = try ConversationEngine(classifier: classifier, encoder: embedder, ded: ded,
                                            configuration: conversation)
        return ServiceModel(package: package, engine: engine,
                            description: ModelDescription(package: package, classifier: classifier, ded: ded))
    }
}
