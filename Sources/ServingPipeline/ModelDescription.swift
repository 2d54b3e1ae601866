import Conversation
import DialogicalEmotionDecoder
import Foundation
import GatedXLSTM
import ModelPackage
import Numerics

/// What is loaded and what it runs on, so a client or operator can tell models (and machines)
/// apart (the server answers `GET /v1/model` with it).
public struct ModelDescription: Encodable, Sendable {
    struct Streams: Encodable { let names: [String] }
    let name: String
    let labels: [String]
    let embeddingDim: Int
    let classifier: ClassifierConfiguration
    let classifierParameters: Int
    let streams: [String]
    let ded: DEDParameters
    let weightsSHA256: String
    let weightsBytes: Int
    let manifestSHA256: String
    let provenance: JSONValue
    /// The kernels this process runs on (chosen by the CPU's feature bits).
    let runtime: KernelPath
    /// How the layers hold their packed weights (`f32` or `bf16`).
    let weightPrecision: Linear.Precision

    enum CodingKeys: String, CodingKey {
        case name, labels, embeddingDim = "embedding_dim", classifier, classifierParameters = "classifier_parameters"
        case streams, ded, weightsSHA256 = "weights_sha256", weightsBytes = "weights_bytes"
        case manifestSHA256 = "manifest_sha256", provenance, runtime, weightPrecision = "weight_precision"
    }

    public init(package: ModelPackage, classifier: GatedXLSTMClassifier, ded: DEDParameters) {
        name = package.manifest.name
        labels = classifier.labels
        embeddingDim = classifier.configuration.embeddingDim
        self.classifier = classifier.configuration
        classifierParameters = classifier.configuration.parameterCount(labels: classifier.labels.count)
        streams = StreamLayout.names
        self.ded = ded
        weightsSHA256 = package.weights.sha256
        weightsBytes = package.weights.fileSize
        manifestSHA256 = package.manifestSHA256
        provenance = package.manifest.provenance
        runtime = .current
        weightPrecision = package.weights.weightPrecision
    }
}
