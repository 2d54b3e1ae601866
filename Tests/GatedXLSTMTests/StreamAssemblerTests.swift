import Testing
@testable import GatedXLSTM

@Suite struct StreamAssemblerTests {
    /// Turn i's audio is [i, 0], text [i, 1]: every stream vector names its source turn.
    func turn(_ i: Int, _ speaker: String, audio: Bool = true, text: Bool = true) -> TurnEmbeddings {
        TurnEmbeddings(speaker: speaker, audio: audio ? [Float(i), 0] : nil, text: text ? [Float(i), 1] : nil)
    }

    let zero: [Float] = [0, 0]

    @Test func layoutNamesTwelveStreams() {
        #expect(StreamLayout.names.count == 12)
        #expect(StreamLayout.names.first == "t.speaker.audio")
        #expect(StreamLayout.names[3] == "t.interlocutor.text")
        #expect(StreamLayout.names.last == "t-2.interlocutor.text")
    }

    @Test func firstTurnHasOnlyItsOwnEmbeddings() {
        let s = StreamAssembler.streams(for: 0, in: [turn(1, "A")], dimension: 2)
        #expect(s.count == 12)
        #expect(s[0] == [1, 0] && s[1] == [1, 1])
        #expect(s[2...].allSatisfy { $0 == zero })
    }

    @Test func twoSpeakersAlternating() {
        let turns = [turn(1, "A"), turn(2, "B"), turn(3, "A"), turn(4, "B")]
        let s = StreamAssembler.streams(for: 3, in: turns, dimension: 2)
        // t = 4 (B), interlocutor 3 (A); t-1 = 3 (A), interlocutor 2; t-2 = 2 (B), interlocutor 1.
        #expect(s[0] == [4, 0] && s[1] == [4, 1] && s[2] == [3, 0] && s[3] == [3, 1])
        #expect(s[4] == [3, 0] && s[5] == [3, 1] && s[6] == [2, 0] && s[7] == [2, 1])
        #expect(s[8] == [2, 0] && s[9] == [2, 1] && s[10] == [1, 0] && s[11] == [1, 1])
    }

    @Test func oneSpeakerOnlyHasNoInterlocutor() {
        let turns = [turn(1, "A"), turn(2, "A"), turn(3, "A")]
        let s = StreamAssembler.streams(for: 2, in: turns, dimension: 2)
        #expect(s[0] == [3, 0] && s[4] == [2, 0] && s[8] == [1, 0])
        for i in [2, 3, 6, 7, 10, 11] { #expect(s[i] == zero) }
    }

    @Test func interlocutorIsLatestDifferentSpeakerAmongThree() {
        // A B C A A: for the last A the interlocutor is C (index 2), not B.
        let turns = [turn(1, "A"), turn(2, "B"), turn(3, "C"), turn(4, "A"), turn(5, "A")]
        #expect(StreamAssembler.interlocutorIndex(of: 4, in: turns) == 2)
        #expect(StreamAssembler.interlocutorIndex(of: 2, in: turns) == 1)
        #expect(StreamAssembler.interlocutorIndex(of: 0, in: turns) == nil)
        let s = StreamAssembler.streams(for: 4, in: turns, dimension: 2)
        #expect(s[2] == [3, 0] && s[3] == [3, 1])       // t's interlocutor C
        #expect(s[4] == [4, 0] && s[6] == [3, 0])       // t-1 = 4 (A), interlocutor C
        #expect(s[8] == [3, 0] && s[10] == [2, 0])      // t-2 = 3 (C), interlocutor B
    }

    @Test func missingModalityReadsAsZeros() {
        let turns = [turn(1, "A", audio: false), turn(2, "B", text: false)]
        let s = StreamAssembler.streams(for: 1, in: turns, dimension: 2)
        #expect(s[0] == [2, 0] && s[1] == zero)          // B has no text
        #expect(s[2] == zero && s[3] == [1, 1])          // A had no audio
        #expect(s[4] == zero && s[5] == [1, 1])          // t-1 = A
    }

    @Test func tuplesStoredPerTurnGiveTheSameStreams() {
        let turns = [turn(1, "A"), turn(2, "B"), turn(3, "B"), turn(4, "A")]
        let direct = StreamAssembler.streams(for: 3, in: turns, dimension: 2)
        let tuples = (0..<turns.count).map { StreamAssembler.tuple(of: $0, in: turns, dimension: 2) }
        let fromTuples = StreamAssembler.streams(current: tuples[3], previous: tuples[2], beforePrevious: tuples[1],
                                                 dimension: 2)
        #expect(direct == fromTuples)
        let first = StreamAssembler.streams(current: tuples[0], previous: nil, beforePrevious: nil, dimension: 2)
        #expect(first == StreamAssembler.streams(for: 0, in: turns, dimension: 2))
    }

    /// The constant-size context a session keeps gives every turn the streams the whole history
    /// gives: several speakers, runs of one speaker, missing modalities.
    @Test func aStreamContextGivesTheStreamsOfTheWholeHistory() {
        var state: UInt64 = 42
        func next(_ n: UInt64) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % n)
        }
        var history: [TurnEmbeddings] = []
        var context = StreamContext(dimension: 2)
        for i in 1...300 {
            let modality = next(3)
            let t = turn(i, ["A", "B", "C", "D"][next(4)], audio: modality != 1, text: modality != 2)
            history.append(t)
            #expect(context.streams(next: t) == StreamAssembler.streams(for: i - 1, in: history, dimension: 2), "turn \(i)")
            context.append(t)
        }
        #expect(StreamContext(turns: history, dimension: 2) == context)
    }
}
