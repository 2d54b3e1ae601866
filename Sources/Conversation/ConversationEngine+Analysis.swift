import DialogicalEmotionDecoder
import Foundation
import GatedXLSTM

/// Whole-dialogue analysis (`/v1/dialogues/analyze`): admitted against the analysis capacity,
/// processed `maxBatch` turns per step through the shared work queue.
extension ConversationEngine {
    // MARK: - Whole dialogues

    /// Analyses a whole dialogue offline: every turn classified with its context, then DED over
    /// the dialogue (repeated twice, keeping the last copy, when `repeatTwice`). Stateless.
    ///
    /// Budgets: at most `maxDialogueTurns` turns and `maxDialogueAudioSeconds` of audio (from the
    /// clips' headers, before any work; 422 `dialogue_too_long`, `dialogue_audio_too_long`); the
    /// turns and audio seconds of all running analyses are bounded by `analysisTurnCapacity` and
    /// `analysisAudioSecondsCapacity` (503 `analysis_queue_full`), and an analysis also takes one
    /// place of `queueCapacity` (503 `queue_full`). The work runs on the same work queue as
    /// session turns, `maxBatch` turns per step, each step going back to the end of the queue,
    /// so that turns posted meanwhile are answered between steps. Before every step the analysis
    /// stops when `isCancelled` says the client is gone (counted in `abandonedAnalyses`) or
    /// `analyzeTimeout` has passed since admission (503 `analysis_timeout`).
    public func analyze(_ turns: [TurnInput], repeatTwice: Bool = true,
                        isCancelled: @escaping @Sendable () -> Bool = { false },
                        completion: @escaping @Sendable (Result<DialogueAnalysis, ConversationError>) -> Void) {
        if turns.isEmpty {
            completion(.failure(ConversationError(.invalidInput, code: "empty_dialogue", "a dialogue needs at least one turn")))
            return
        }
        if turns.count > configuration.maxDialogueTurns {
            completion(.failure(ConversationError(.invalidInput, code: "dialogue_too_long",
                                                  "a dialogue may have at most \(configuration.maxDialogueTurns) turns")))
            return
        }
        for (i, turn) in turns.enumerated() {
            if let problem = validate(sessionId: "dialogue", turn) {
                completion(.failure(problem.at(turn: i)))
                return
            }
        }
        let bytes = turns.reduce(0) { $0 + $1.storedBytes(turnId: nil) }
        if bytes > configuration.limits.sessionBytes {
            completion(.failure(ConversationError(.invalidInput, code: "dialogue_too_large",
                                                  "the dialogue's strings are \(bytes) UTF-8 bytes; the limit is \(configuration.limits.sessionBytes)")))
            return
        }
        var seconds = 0.0
        for (i, turn) in turns.enumerated() {
            guard let audio = turn.audio else { continue }
            do {
                seconds += try encoder.audioSeconds(of: audio)
            } catch {
                completion(.failure(ConversationError(error, otherwise: "audio_probe_failed").at(turn: i)))
                return
            }
        }
        if seconds > configuration.maxDialogueAudioSeconds {
            completion(.failure(ConversationError(.invalidInput, code: "dialogue_audio_too_long",
                                                  "the dialogue's audio is \(Int(seconds.rounded(.up))) s; the limit is \(Int(configuration.maxDialogueAudioSeconds)) s")))
            return
        }
        lock.lock()
        if let refusal = newWorkRefusal() {
            lock.unlock()
            completion(.failure(refusal))
            return
        }
        let running = analysisTurns > 0 || analysisAudioSeconds > 0
        if running && (analysisTurns + turns.count > configuration.analysisTurnCapacity
                       || analysisAudioSeconds + seconds > configuration.analysisAudioSecondsCapacity) {
            rejectedAnalyses += 1
            lock.unlock()
            completion(.failure(ConversationError(.overloaded, code: "analysis_queue_full",
                                                  "too many dialogue turns or audio seconds are being analysed; retry later")))
            return
        }
        waitingCount += 1
        analysisTurns += turns.count
        analysisAudioSeconds += seconds
        let job = DialogueJob(turns: turns, repeatTwice: repeatTwice, audioSeconds: seconds,
                              timeout: configuration.analyzeTimeout, isCancelled: isCancelled, completion: completion)
        _ = queue.enqueue(.dialogue(job), force: true)
        lock.unlock()
    }

    public func analyze(_ turns: [TurnInput], repeatTwice: Bool = true,
                        isCancelled: @escaping @Sendable () -> Bool = { false }) async throws(ConversationError) -> DialogueAnalysis {
        let result: Result<DialogueAnalysis, ConversationError> = await withCheckedContinuation { continuation in
            analyze(turns, repeatTwice: repeatTwice, isCancelled: isCancelled) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// One step of an analysis: `maxBatch` more turns embedded and classified, then back to the
    /// end of the queue, or DED and the answer after the last turn.
    func step(_ job: DialogueJob) {
        let left = job.turns.count - job.history.count
        if job.isCancelled() {
            finishAnalysis(job, .failure(ConversationError(.unavailable, code: "client_gone",
                                                           "the client closed the connection")),
                           abandoned: true, skipped: left)
            return
        }
        if DispatchTime.now() >= job.deadline {
            finishAnalysis(job, .failure(ConversationError(.overloaded, code: "analysis_timeout",
                                                           "the analysis took longer than \(Int(configuration.analyzeTimeout)) s; retry with fewer turns or later")),
                           timedOut: true, skipped: left)
            return
        }
        do {
            let start = job.history.count
            let end = min(job.turns.count, start + max(1, configuration.maxBatch))
            for i in start..<end {
                do {
                    job.history.append(try pipeline.embeddings(of: job.turns[i]))
                } catch {
                    throw ConversationError(error, otherwise: "encoder_failed").at(turn: i)
                }
            }
            job.classifications += try pipeline.classify(start..<end, of: job.history)
            if end < job.turns.count {
                guard queue.enqueue(.dialogue(job), force: true) else {
                    throw ConversationError(.unavailable, code: "shutting_down", "the server is shutting down")
                }
                return
            }
            let decoded = try pipeline.decodeOffline(job.history, classifications: job.classifications, repeatTwice: job.repeatTwice)
            finishAnalysis(job, .success(DialogueAnalysis(classifications: job.classifications, decoded: decoded,
                                                          milliseconds: Self.milliseconds(since: job.enqueuedAt))))
        } catch {
            finishAnalysis(job, .failure(ConversationError(error, otherwise: "analysis_failed")))
        }
    }

    /// Gives an analysis's place in the queue and its budget back, then answers it.
    func finishAnalysis(_ job: DialogueJob, _ result: Result<DialogueAnalysis, ConversationError>,
                                abandoned: Bool = false, timedOut: Bool = false, skipped: Int = 0) {
        lock.lock()
        waitingCount -= 1
        analysisTurns -= job.turns.count
        analysisAudioSeconds -= job.audioSeconds
        if analysisTurns == 0 { analysisAudioSeconds = 0 }  // no drift from float sums
        if abandoned { abandonedAnalyses += 1 }
        if timedOut { timedOutAnalyses += 1 }
        skippedAnalysisTurns += skipped
        lock.unlock()
        job.completion(result)
    }
}
