import AudioTowers
import Conversation
import ErrorVocabulary
import Foundation
import ModelPackage
import ServingPipeline
import Testing
import TestSupport

/// The serving pipeline in process on the tiny complete model (Tests/SharedFixtures/tiny-model,
/// reference: Training/fixtures/make_tiny_service_model.py): the turn embedder against the
/// reference embeddings, its errors as the conversation layer sees them, and model loading. (The
/// same model over HTTP: EmotionServiceTests.EndToEndTests; through `emotion embed`:
/// EmotionCLITests.)
@Suite struct ServingPipelineTests {
    static let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../SharedFixtures/tiny-model").standardized

    struct Expected: Decodable {
        let audio: [String: [Float]]
        let text: [String: [Float]]
    }

    static func clip(_ name: String) throws -> Data {
        try Data(contentsOf: model.appendingPathComponent("clips/\(name)"))
    }

    @Test func turnEmbedderMatchesTheReferencePipeline() throws {
        let embedder = try TurnEmbedder(package: ModelPackage.load(directory: Self.model))
        #expect(embedder.dimension == 64)
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Self.model.appendingPathComponent("expected.json")))
        #expect(expected.audio.count == 3 && expected.text.count >= 4)
        // long.wav (11.5 s) is two windows: their mean, renormalised.
        for (name, want) in expected.audio {
            let got = try embedder.embed(audio: try Self.clip(name))
            #expect(maxAbsDiff(got, want) <= 1e-4 && cosine(got, want) >= 0.9999, "\(name): max abs \(maxAbsDiff(got, want))")
        }
        for (transcript, want) in expected.text {
            let got = try embedder.embed(text: transcript)
            #expect(maxAbsDiff(got, want) <= 1e-4 && cosine(got, want) >= 0.9999, "\(transcript): max abs \(maxAbsDiff(got, want))")
        }
    }

    /// The turns of a batch (different sessions) through each tower in one call: every clip and
    /// transcript gets the reference's embedding, windows of different clips mixed (long.wav is
    /// two), and a bad clip in the batch fails alone with its own error.
    @Test func batchedTurnsGetTheReferenceEmbeddings() throws {
        let embedder = try TurnEmbedder(package: ModelPackage.load(directory: Self.model))
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Self.model.appendingPathComponent("expected.json")))
        let names = expected.audio.keys.sorted()
        let clips = try names.map(Self.clip) + [Data("RIFF....not audio".utf8)] + [try Self.clip(names[0])]
        let audio = embedder.embed(audios: clips)
        #expect(audio.count == clips.count)
        for (i, name) in (names + [names[0]]).enumerated() {
            let k = i < names.count ? i : clips.count - 1
            let got = try audio[k].get(), want = try #require(expected.audio[name])
            #expect(maxAbsDiff(got, want) <= 1e-4 && cosine(got, want) >= 0.9999, "\(name): max abs \(maxAbsDiff(got, want))")
        }
        #expect(throws: (any Error).self) { try audio[names.count].get() }
        if case .failure(let error) = audio[names.count] { #expect((error as? any CodedError)?.code == "unreadable_audio") }
        let transcripts = expected.text.keys.sorted()
        let text = embedder.embed(texts: transcripts)
        for (i, transcript) in transcripts.enumerated() {
            let got = try text[i].get(), want = try #require(expected.text[transcript])
            #expect(maxAbsDiff(got, want) <= 1e-4 && cosine(got, want) >= 0.9999, "\(transcript): max abs \(maxAbsDiff(got, want))")
        }
    }

    /// The client's audio errors keep their stage's code and say they are the client's: the
    /// engine answers the turn with them (422 in the service), a broken package stays internal.
    @Test func clientAudioErrorsReachTheConversationAsInvalidInput() async throws {
        let model = try ServiceModel.load(directory: Self.model, maxAudioSeconds: 10)
        let embedder = try TurnEmbedder(package: ModelPackage.load(directory: Self.model), maxAudioSeconds: 10)
        #expect(embedder.dimension == 64)
        for (data, code) in [(Data("RIFF....not audio".utf8), "unreadable_audio"), (try Self.clip("long.wav"), "audio_too_long")] {
            #expect { _ = try embedder.embed(audio: data) } throws: { error in
                (error as? any CodedError).map { $0.kind == .invalidInput && $0.code == code } ?? false
            }
            do {
                _ = try await model.engine.submit(sessionId: "s-\(code)", turn: TurnInput(speaker: "A", transcript: "", audio: data))
                Issue.record("\(code): the turn was accepted")
            } catch {
                #expect(error.kind == .invalidInput && error.code == code, "\(error)")
            }
        }
        #expect(AudioTowerError(code: "invalid_features", message: "x").kind == .internal)
    }

    /// A dialogue's audio is counted from the clips' headers, before any decoding.
    @Test func audioSecondsAreReadFromTheHeader() throws {
        let encoder = try TurnEmbedder(package: ModelPackage.load(directory: Self.model), maxAudioSeconds: 20)
        let long = try encoder.audioSeconds(of: Self.clip("long.wav"))
        #expect(abs(long - 11.5) < 0.01, "\(long)")
        #expect { _ = try encoder.audioSeconds(of: Data("RIFF....not audio".utf8)) } throws: { error in
            (error as? any CodedError).map { $0.kind == .invalidInput && $0.code == "unreadable_audio" } ?? false
        }
        // A clip over the per-clip limit is refused from its header, as when it is embedded.
        let short = try TurnEmbedder(package: ModelPackage.load(directory: Self.model), maxAudioSeconds: 10)
        #expect { _ = try short.audioSeconds(of: Self.clip("long.wav")) } throws: { error in
            (error as? any CodedError)?.code == "audio_too_long"
        }
    }

    @Test func serviceModelLoadsThePackageIntoAnEngine() throws {
        let model = try ServiceModel.load(directory: Self.model, maxAudioSeconds: 600)
        #expect(model.package.manifest.name == "tiny-service-test-model")
        let description = try JSONSerialization.jsonObject(with: JSONEncoder().encode(model.description)) as? [String: Any]
        #expect(description?["name"] as? String == "tiny-service-test-model")
        #expect(description?["embedding_dim"] as? Int == 64)
        #expect(description?["labels"] as? [String] == ["ang", "hap", "neu", "sad"])
    }
}
