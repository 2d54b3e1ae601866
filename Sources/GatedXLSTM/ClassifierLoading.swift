import ModelPackage
import Numerics

extension GatedXLSTMClassifier {
    /// Builds the classifier from a model package: sizes from its `classifier` section, labels
    /// from the manifest, every tensor checked by name and shape. Tensors the classifier does not
    /// use are left for other pipeline stages (the encoder); the caller refuses leftovers with
    /// `WeightStore.requireAllClaimed()` once every stage is loaded.
    public convenience init(package: ModelPackage) throws {
        let configuration = try package.section("classifier", as: ClassifierConfiguration.self)
        try self.init(configuration: configuration, labels: package.manifest.labels, parameters: package.weights)
    }
}
