import ErrorVocabulary
import Testing
@testable import HTTPServer

/// The one table from kinds of failure to HTTP statuses, and how a handler's errors become answers.
@Suite("Error kinds")
struct ErrorKindTests {
    struct Coded: CodedError {
        let code: String
        let message: String
        let kind: ErrorKind
        var retryAfter: Double? = nil
    }

    @Test func everyKindHasTheStatusOfItsClass() {
        var statuses: [ErrorKind: Int] = [:]
        for kind in ErrorKind.allCases {
            let status = HTTPStatus(kind).code
            statuses[kind] = status
            switch kind {
            case .overloaded, .unavailable, .internal:
                #expect(!kind.isClientError && (500..<600).contains(status), "\(kind) -> \(status)")
            case .notImplemented, .versionNotSupported:
                // The request asks for what this server does not do: unchanged, it fails again.
                #expect(kind.isClientError && (500..<600).contains(status), "\(kind) -> \(status)")
            case .quotaExceeded:
                #expect(!kind.isClientError && status == 429)
            default:
                #expect(kind.isClientError && (400..<500).contains(status), "\(kind) -> \(status)")
            }
            #expect(kind.isTransient == [429, 503].contains(status), "\(kind) -> \(status)")
        }
        // The statuses clients and the OpenAPI document rely on.
        #expect(statuses[.malformedRequest] == 400 && statuses[.invalidInput] == 422 && statuses[.notFound] == 404)
        #expect(statuses[.conflict] == 409 && statuses[.quotaExceeded] == 429 && statuses[.internal] == 500)
        #expect(statuses[.overloaded] == 503 && statuses[.unavailable] == 503 && statuses[.unauthorized] == 401)
    }

    @Test func transientErrorsSayWhenToRetry() {
        let busy = HTTPError(Coded(code: "queue_full", message: "m", kind: .overloaded, retryAfter: 2.2))
        #expect(busy.status == .serviceUnavailable && busy.code == "queue_full" && busy.headers["Retry-After"] == "3")
        let quota = HTTPError(Coded(code: "tenant_session_quota", message: "m", kind: .quotaExceeded), retryAfterSeconds: 7)
        #expect(quota.status == .tooManyRequests && quota.headers["Retry-After"] == "7")
        let huge = Coded(code: "x", message: "m", kind: .unavailable, retryAfter: 1e12)
        #expect(huge.retryAfterSeconds(default: 1) == 86_400)
        let invalid = HTTPError(Coded(code: "unreadable_audio", message: "m", kind: .invalidInput, retryAfter: 5))
        #expect(invalid.status == .unprocessableContent && invalid.headers["Retry-After"] == nil)
    }

    @Test func aHandlersErrorIsAnsweredInItsKindAndInternalTextStaysInside() {
        struct Foreign: Error {}
        let invalid = HTTPError.answer(for: Coded(code: "unreadable_audio", message: "not audio", kind: .invalidInput))
        #expect(invalid.status.code == 422 && invalid.code == "unreadable_audio" && invalid.message == "not audio")
        let secret = HTTPError.answer(for: Coded(code: "checksum_mismatch", message: "/secret/path", kind: .internal))
        #expect(secret.status.code == 500 && secret.code == "internal_error" && !secret.message.contains("secret"))
        #expect(HTTPError.answer(for: Foreign()).code == "internal_error")
        let thrown = HTTPError(kind: .conflict, code: "c", message: "m")
        #expect(HTTPError.answer(for: thrown) == thrown)
    }
}
