import Foundation
import QieClient
import QieProviders
import QieStore

/// One paid request's life, as a value: the only place that decides when
/// money is reserved, when a request is sent, asked about or fetched, what
/// is settled, what is released, and when a request is `uncertain`.
///
/// It performs no I/O. Its driver feeds it what happened (`Event`) and
/// carries out what it returns (`Action`), in order: an action that fails
/// becomes the next event, and the actions after it are dropped. `Editor`
/// drives one per request; a folder run's job is one request; the gateway's
/// requests are the editor's. Observers (a run's store, progress, the
/// gateway's log) see its moves as `JobMove`s, recorded before the next
/// step.
///
/// Reading `handle(_:)` tells every way money can be spent:
/// - money is reserved before a request is sent, and recorded as `sending`
///   before it leaves; a request is sent at most once per machine;
/// - a request the endpoint accepted or answered is billed: whatever
///   happens next (its results cannot be fetched, decoded or written, the
///   endpoint fails the job), its money stays spent (`lost`), and its
///   recorded results are fetched again on resume, never paid for again;
/// - a request sent without a usable answer may have been billed: its
///   money stays spent (`uncertain`), and it is sent again only when asked;
/// - money is released only when a failure proves nothing was billed
///   (refused before acceptance, or never sent), or when an accepted job
///   that was given up (its wait timed out, the run was stopped) is
///   cancelled at the endpoint and the endpoint confirms it never ran;
///   cancelled too late, it may have been billed (`uncertain`).
public struct PaidRequest: Sendable {
    /// Where the request stands.
    public enum State: Sendable, Equatable {
        /// Not started.
        case idle
        /// To be sent, once the input is prepared and its estimate reserved.
        case ready
        /// Picking up what an earlier run recorded: a job to ask about, or
        /// results to fetch, once the input is prepared.
        case resuming(RecordedRequest)
        /// Its estimate is being reserved.
        case reserving
        /// Reserved; `sending` is being recorded, then the request leaves.
        case reserved
        /// On the wire: from here it may be billed.
        case sending
        /// The endpoint took it as job `jobID`: billed; its end is awaited.
        case accepted(jobID: String)
        /// Job `jobID` was given up (`reason`) and is being cancelled at
        /// the endpoint: billed unless the endpoint says it never ran.
        case cancelling(jobID: String, reason: String)
        /// The endpoint answered with results: billed; they are fetched.
        case answered(EndpointAnswer)
        /// The results are in hand: converted, restored and delivered locally.
        case finishing(EndpointAnswer)
        /// Delivered to `outputs`; settled at its cost.
        case completed(outputs: [String], cost: Decimal?)
        /// Ended and nothing was billed: its reservation is released.
        case failed(reason: String)
        /// Given up and cancelled at the endpoint before it ran: nothing
        /// was billed; its reservation is released.
        case cancelled(reason: String)
        /// Sent and no usable answer came back: it may have been billed.
        case uncertain(reason: String)
        /// Billed, and its results could not be had.
        case lost(reason: String)
        /// Accepted and not ended within this run (timed out, stopped):
        /// billed; asked about again on resume.
        case waiting(reason: String)
        /// The budget or cost limit refused it: nothing was sent.
        case refused(BudgetRefusal)
        /// Another worker holds it (this worker's lease ran out): nothing was
        /// sent or recorded here.
        case yielded
        /// Stopped before anything was reserved: the next run does it.
        case withdrawn
        /// Done in an earlier run, or ended there and not to be tried again.
        case endedEarlier(reason: String?)

        /// Whether the machine has nothing more to do.
        public var isFinal: Bool {
            switch self {
            case .completed, .failed, .cancelled, .uncertain, .lost, .waiting, .refused, .yielded, .withdrawn, .endedEarlier: true
            default: false
            }
        }
    }

    /// How the machine starts: where an earlier run left the request (a new
    /// request when there is none), the money that attempt may have been
    /// billed, and whether ended requests are tried again.
    public struct Start: Sendable, Equatable {
        /// What the run's store recorded.
        public var recorded: RecordedRequest
        /// What the recorded attempt may have been billed (its reported
        /// cost, else its estimate), carried when it is sent again.
        public var recordedCost: Decimal?
        /// Send again a request that failed, or whose results were lost
        /// (paying again): a folder run's `retryFailed`.
        public var retryFailed: Bool
        /// Send again a request that may have been billed: `retryUncertain`.
        public var retryUncertain: Bool
        /// A budget or cost limit will be asked, so the request needs a price.
        public var priced: Bool

        /// A start from `recorded`.
        public init(
            _ recorded: RecordedRequest = .new, recordedCost: Decimal? = nil, retryFailed: Bool = false,
            retryUncertain: Bool = false, priced: Bool = false
        ) {
            self.recorded = recorded
            self.recordedCost = recordedCost
            self.retryFailed = retryFailed
            self.retryUncertain = retryUncertain
            self.priced = priced
        }
    }

    /// What happened.
    public enum Event: Sendable {
        /// Begin from `Start`.
        case start(Start)
        /// The input is prepared; the request would cost `estimate` (nil:
        /// unpriced) at `endpoint`, and asks for `results` results.
        /// `cancels`: the endpoint can cancel a job that is given up.
        case prepared(estimate: Decimal?, endpoint: String, results: Int, cancels: Bool = false)
        /// The estimate is reserved.
        case reserved
        /// `sending` is recorded: the request may leave.
        case sendingRecorded
        /// The budget or the cost limit refused the reservation.
        case refused(BudgetRefusal)
        /// This worker's lease on the job ran out: another worker holds it.
        case yielded
        /// The run was stopped before this request was reserved.
        case withdrawn
        /// The endpoint took the request as job `jobID` (after `submissions`
        /// submissions, retries the client made included).
        case accepted(jobID: String, submissions: Int)
        /// The endpoint answered with results.
        case answered(EndpointAnswer)
        /// What the endpoint said to the cancel of a job given up.
        case cancelled(CancelOutcome)
        /// Every result is downloaded.
        case fetched
        /// The results are delivered to `outputs` (files written; none for
        /// an edit in memory).
        case delivered(outputs: [String])
        /// The step in progress failed with `error`.
        case failed(EditError)
    }

    /// What to do next.
    public enum Action: Sendable, Equatable {
        /// Reserve `estimate` with the budget (nothing to reserve: go on).
        case reserve(estimate: Decimal?)
        /// Record `move` before going on. Once a `sending` move is
        /// recorded, feed `sendingRecorded`; one the store refuses (the cost
        /// limit, a lost lease) is fed back as `refused` or `yielded`, and
        /// the request does not leave. Other moves a store fails to record
        /// change nothing here: the record lags, and the money it shows is
        /// never less than what was spent.
        case record(JobMove)
        /// Send the request.
        case send
        /// Ask the endpoint about job `jobID` until it ends.
        case poll(jobID: String)
        /// Ask the endpoint to cancel job `jobID` (given up), and feed back
        /// what it said (`cancelled`).
        case cancel(jobID: String)
        /// Fetch the answer's results.
        case fetch(EndpointAnswer)
        /// Convert, restore and deliver the results.
        case finish(EndpointAnswer)
        /// The reservation ends: `spent` of it was (or may have been)
        /// billed; the rest is released.
        case settle(spent: Decimal)
        /// Nothing more: the request ended as its state says.
        case end
    }

    /// Where the request stands.
    public private(set) var state: State = .idle
    /// What this attempt is estimated to cost, once prepared.
    public private(set) var estimate: Decimal?
    /// The endpoint's id, for messages.
    public private(set) var endpoint = "the endpoint"
    /// Results the request asks for: an answer with more is the endpoint's
    /// error (billed, and none of them fetched).
    public private(set) var resultsAsked = 1
    /// Whether the endpoint can cancel a job that is given up.
    public private(set) var cancels = false
    /// What an earlier attempt may have been billed, carried into this one.
    public private(set) var carried: Decimal = 0
    /// Whether money is reserved and not yet settled.
    public private(set) var holdsReservation = false
    /// Whether this machine sent the request (at most once).
    public private(set) var sent = false
    /// What the endpoint reported it cost, once it answered.
    public private(set) var reportedCost: Decimal?
    /// The error the request ended with, when it did not complete.
    public private(set) var failure: EditError?
    private var start = Start()

    /// A machine waiting for `.start`.
    public init() {}

    /// Whether the endpoint may have billed this request (it reached the
    /// endpoint now, or in the run it was picked up from).
    public var mayHaveBeenBilled: Bool {
        switch state {
        case .sending, .accepted, .cancelling, .answered, .finishing, .completed, .uncertain, .lost, .waiting: true
        default: false
        }
    }

    /// Whether the request ended refused by the endpoint before it took it
    /// (a 4xx answer, a 429 at submission, a connection that failed before
    /// the request was written): the one proof that nothing was billed
    /// after sending, so routing may send it to another endpoint.
    public var refusedBeforeAcceptance: Bool {
        if case .failed = state { return sent }
        return false
    }

    /// The money this attempt counts: reported where the endpoint reported, else estimated.
    public var amount: Decimal? { reportedCost ?? estimate }

    /// Feeds `event`; returns what to do next. An event that makes no sense
    /// in the current state (an answer to a request never sent) changes
    /// nothing and asks for nothing.
    public mutating func handle(_ event: Event) -> [Action] {
        switch (state, event) {
        case (.idle, .start(let start)):
            self.start = start
            return begin(start)

        case (.ready, .prepared(let estimate, let endpoint, let results, let cancels)),
            (.resuming, .prepared(let estimate, let endpoint, let results, let cancels)):
            self.estimate = estimate
            self.endpoint = endpoint
            self.cancels = cancels
            resultsAsked = results
            if case .resuming(let recorded) = state { return pickUp(recorded) }
            if start.priced, estimate == nil {
                let error = EditError.unpriced(endpoint: endpoint)
                return recordUnsent(error.reason(naming: \.name)) + end(.failed(reason: error.reason(naming: \.name)), failure: error)
            }
            state = .reserving
            return [.reserve(estimate: estimate)]
        case (.ready, .withdrawn), (.resuming, .withdrawn):
            return end(.withdrawn, failure: .stopped)
        case (.ready, .failed(let error)), (.reserving, .failed(let error)):
            // Nothing reserved, nothing sent: an input that cannot be read,
            // a budget that cannot be asked.
            let reason = error.reason(naming: \.name)
            return recordUnsent(reason) + end(.failed(reason: reason), failure: error)
        case (.resuming, .failed(let error)):
            // A recorded job (billed) that cannot be picked up now: its record
            // stands, and the next run tries again.
            return end(.waiting(reason: error.reason(naming: \.name)), failure: error)

        case (.reserving, .reserved):
            holdsReservation = true
            state = .reserved
            return [.record(.sending(estimate: estimate, carried: carried))]
        case (.reserved, .sendingRecorded):
            // Recorded as leaving: from here it may be billed.
            sent = true
            state = .sending
            return [.send]
        case (.reserving, .refused(let refusal)):
            return end(.refused(refusal), failure: .overBudget(refusal))
        case (.reserved, .refused(let refusal)):
            return end(.refused(refusal), failure: .overBudget(refusal), settle: 0)
        case (.reserved, .yielded):
            return end(.yielded, failure: .yielded, settle: 0)
        case (.reserved, .failed(let error)):
            // Recording `sending` failed: the request did not leave.
            return end(.failed(reason: error.reason(naming: \.name)), failure: error, settle: 0)

        case (.sending, .accepted(let id, let submissions)):
            state = .accepted(jobID: id)
            return [.record(.accepted(requestID: id, extraAttempts: max(0, submissions - 1))), .poll(jobID: id)]
        case (.sending, .answered(let answer)):
            return take(answer, extraAttempts: max(0, answer.submissions - 1))
        case (.accepted, .answered(let answer)):
            // Its submissions were counted when it was accepted.
            return take(answer, extraAttempts: 0)
        case (.sending, .failed(let error)):
            return failedSending(error)

        case (.accepted(let id), .failed(let error)):
            return failedWaiting(error, jobID: id)
        case (.cancelling(_, let reason), .cancelled(let outcome)):
            return cancelled(outcome, reason: reason)

        case (.answered(let answer), .fetched):
            state = .finishing(answer)
            return [.finish(answer)]
        case (.answered(let answer), .failed(let error)):
            return failedFetching(error, answer: answer)

        case (.finishing, .delivered(let outputs)):
            let cost = reportedCost ?? estimate
            state = .completed(outputs: outputs, cost: cost)
            var actions: [Action] = [.record(.completed(outputs: outputs, reportedCost: reportedCost, polls: 0))]
            if holdsReservation {
                holdsReservation = false
                actions.append(.settle(spent: cost ?? 0))
            }
            return actions + [.end]
        case (.finishing(let answer), .failed(let error)):
            return failedFinishing(error, answer: answer)

        default:
            return []
        }
    }

    /// The record of an attempt that failed before it was sent: `failed`,
    /// unless an earlier attempt's record says money may have been billed
    /// (an uncertain or lost job tried again), which stands.
    private func recordUnsent(_ reason: String) -> [Action] {
        switch start.recorded {
        case .sending, .uncertain, .lost: []
        default: [.record(.failed(reason: reason, extraAttempts: 0))]
        }
    }

    // MARK: Starting

    private mutating func begin(_ start: Start) -> [Action] {
        switch start.recorded {
        case .new:
            state = .ready
            return []
        case .accepted, .answered:
            state = .resuming(start.recorded)
            return []
        case .lost(_, let answer?) where !answer.results.isEmpty:
            // Paid for: its recorded results are fetched again, never paid for again.
            state = .resuming(.answered(answer))
            return []
        case .completed:
            return end(.endedEarlier(reason: nil), failure: nil)
        case .failed(let reason):
            guard start.retryFailed else { return end(.endedEarlier(reason: reason), failure: .failedEarlier(reason: reason)) }
            state = .ready
            return []
        case .lost(let reason, _):
            guard start.retryFailed else {
                return end(.endedEarlier(reason: reason), failure: .resultsLost(cost: start.recordedCost, reason: reason, sendAgain: .retryFailed))
            }
            carried = start.recordedCost ?? 0
            state = .ready
            return []
        case .uncertain(let reason):
            guard start.retryUncertain else {
                return end(.endedEarlier(reason: reason), failure: .uncertainEarlier(reason: reason))
            }
            carried = start.recordedCost ?? 0
            state = .ready
            return []
        case .sending:
            // A run stopped while sending it: it may have reached the endpoint.
            let reason = "the run sending it was stopped before hearing back"
            guard start.retryUncertain else {
                return [.record(.uncertain(reason: reason, extraAttempts: 0))]
                    + end(.endedEarlier(reason: reason), failure: .uncertainEarlier(reason: reason))
            }
            carried = start.recordedCost ?? 0
            state = .ready
            return []
        }
    }

    private mutating func pickUp(_ recorded: RecordedRequest) -> [Action] {
        switch recorded {
        case .accepted(let id):
            state = .accepted(jobID: id)
            return [.poll(jobID: id)]
        case .answered(let answer):
            reportedCost = answer.reportedCost
            state = .answered(answer)
            return [.fetch(answer)]
        default:
            state = .ready
            return []
        }
    }

    // MARK: Answers and failures

    private mutating func take(_ answer: EndpointAnswer, extraAttempts: Int) -> [Action] {
        reportedCost = answer.reportedCost
        state = .answered(answer)
        let links = answer.results.compactMap { if case .url(let url) = $0 { url } else { nil } }
        guard answer.results.count <= resultsAsked else {
            // More results than asked for is the endpoint's error: billed,
            // and none of them recorded or fetched.
            let reason = "\(endpoint) answered with \(answer.results.count) results to a request for \(resultsAsked); none was fetched"
            let lost = EditError.resultsLost(cost: amount, reason: reason, sendAgain: .retryFailed)
            return [
                .record(
                    .answered(
                        requestID: answer.jobID, results: [], reportedCost: answer.reportedCost, extraAttempts: extraAttempts,
                        polls: answer.polls)),
                .record(.lost(reason: reason, keepResults: false, polls: 0)),
            ] + end(.lost(reason: reason), failure: lost, settle: amount ?? 0)
        }
        return [
            .record(
                .answered(
                    requestID: answer.jobID, results: links, reportedCost: answer.reportedCost, extraAttempts: extraAttempts,
                    polls: answer.polls)),
            .fetch(answer),
        ]
    }

    /// A failure while the request was on the wire: released only when the
    /// failure proves the endpoint did not take it.
    private mutating func failedSending(_ error: EditError) -> [Action] {
        let reason = error.reason(naming: \.name)
        switch Self.verdict(onSending: error) {
        case .notBilled(let extra):
            return [.record(.failed(reason: reason, extraAttempts: extra))]
                + end(.failed(reason: reason), failure: error, settle: 0)
        case .mayBeBilled(let extra):
            return [.record(.uncertain(reason: reason, extraAttempts: extra))]
                + end(.uncertain(reason: reason), failure: error, settle: amount ?? 0)
        case .billed:
            let lost = EditError.resultsLost(cost: amount, reason: reason, sendAgain: .retryFailed)
            return [.record(.lost(reason: reason, keepResults: false, polls: 0))]
                + end(.lost(reason: reason), failure: lost, settle: amount ?? 0)
        }
    }

    /// A failure while an accepted job was waited for: billed, unless it
    /// was given up (timed out, stopped) and the endpoint can cancel it.
    private mutating func failedWaiting(_ error: EditError, jobID: String) -> [Action] {
        let reason = error.reason(naming: \.name)
        let mayYetFinish: Bool
        var givenUp = false
        switch error {
        case .endpoint(let client):
            mayYetFinish = client.kind == .timedOut || client.kind == .network
            givenUp = client.kind == .timedOut
        case .stopped:
            mayYetFinish = true
            givenUp = true
        default: mayYetFinish = false
        }
        if givenUp && cancels {
            failure = error
            state = .cancelling(jobID: jobID, reason: reason)
            return [.cancel(jobID: jobID)]
        }
        guard mayYetFinish else {
            let lost = EditError.resultsLost(cost: amount, reason: reason, sendAgain: .retryFailed)
            return [.record(.lost(reason: reason, keepResults: false, polls: 0))]
                + end(.lost(reason: reason), failure: lost, settle: amount ?? 0)
        }
        // It may yet finish: asked about again on resume.
        return [.record(.waiting(reason: reason, polls: 0))]
            + end(.waiting(reason: reason), failure: error, settle: amount ?? 0)
    }

    /// What the endpoint said to the cancel of a job given up for `reason`:
    /// confirmed before it ran, nothing was billed and the reservation is
    /// released; too late, it may have been billed (`uncertain`); refused
    /// or unanswered, the job may yet finish and is asked about on resume.
    private mutating func cancelled(_ outcome: CancelOutcome, reason: String) -> [Action] {
        let error = failure ?? .stopped
        switch outcome {
        case .cancelledBeforeRunning:
            let said = "\(reason); cancelled at \(endpoint) before it ran, so nothing was billed"
            return [.record(.cancelled(reason: said, polls: 0))] + end(.cancelled(reason: said), failure: error, settle: 0)
        case .tooLate(let status):
            let said = "\(reason); cancelled at \(endpoint), which had already started it (\(status)): it may have been billed"
            return [.record(.uncertain(reason: said, extraAttempts: 0))]
                + end(.uncertain(reason: said), failure: error, settle: amount ?? 0)
        case .refused(let message):
            let said = "\(reason); the cancel was refused (\(message)), so it is asked about again on resume"
            return [.record(.waiting(reason: said, polls: 0))] + end(.waiting(reason: said), failure: error, settle: amount ?? 0)
        }
    }

    /// A failure while results were fetched: billed; the links are kept
    /// for a later fetch unless they expired or proved unusable.
    private mutating func failedFetching(_ error: EditError, answer: EndpointAnswer) -> [Action] {
        let reason = error.reason(naming: \.name)
        if case .stopped = error {
            // Its results are recorded: the next run fetches them.
            return end(.waiting(reason: reason), failure: error, settle: amount ?? 0)
        }
        var keep = true
        if case .endpoint(let client) = error {
            if let status = client.status, [403, 404, 410].contains(status) { keep = false }
            if answer.recorded && client.kind != .network { keep = false }
        } else if answer.recorded {
            keep = false
        }
        let lost = EditError.resultsLost(cost: amount, reason: reason, sendAgain: keep ? nil : .retryFailed)
        return [.record(.lost(reason: reason, keepResults: keep, polls: 0))]
            + end(.lost(reason: reason), failure: lost, settle: amount ?? 0)
    }

    /// A failure while results were converted, restored or delivered:
    /// billed; fetched again on resume unless they proved unusable.
    private mutating func failedFinishing(_ error: EditError, answer: EndpointAnswer) -> [Action] {
        let reason = error.reason(naming: \.name)
        if case .stopped = error {
            return end(.waiting(reason: reason), failure: error, settle: amount ?? 0)
        }
        var keep = true
        if case .result = error, answer.recorded { keep = false }
        let lost = EditError.resultsLost(cost: amount, reason: reason, sendAgain: keep ? nil : .retryFailed)
        return [.record(.lost(reason: reason, keepResults: keep, polls: 0))]
            + end(.lost(reason: reason), failure: lost, settle: amount ?? 0)
    }

    private mutating func end(_ final: State, failure: EditError?, settle: Decimal? = nil) -> [Action] {
        state = final
        self.failure = failure
        var actions: [Action] = []
        if let settle, holdsReservation {
            holdsReservation = false
            actions.append(.settle(spent: settle))
        }
        return actions + [.end]
    }

    /// What a failure of a request on the wire says about its money.
    enum Verdict: Equatable {
        /// The endpoint provably did not take it (`extra` submissions retried).
        case notBilled(extraAttempts: Int)
        /// It may have processed it.
        case mayBeBilled(extraAttempts: Int)
        /// It took it (it gave a job id) and failed it.
        case billed
    }

    /// The one judgement of a failed submission: a job id means the
    /// endpoint took it; no usable answer, a 5xx or a stop mid-request means
    /// it may have; a refusal (4xx), a connection that failed before the
    /// request was written, or a body that could not be produced means it
    /// did not.
    static func verdict(onSending error: EditError) -> Verdict {
        guard case .endpoint(let client) = error else { return .mayBeBilled(extraAttempts: 0) }
        let extra = max(0, client.submissions - 1)
        if client.jobID != nil { return .billed }
        if client.kind == .uncertain || client.kind == .timedOut { return .mayBeBilled(extraAttempts: extra) }
        if let status = client.status, (500...599).contains(status) { return .mayBeBilled(extraAttempts: extra) }
        return .notBilled(extraAttempts: extra)
    }
}

/// An endpoint's answer to a request: its results, and what it said about
/// the job.
public struct EndpointAnswer: Sendable, Equatable {
    /// The endpoint's id for the job, when it gave one.
    public var jobID: String?
    /// The results, as links or inline bytes.
    public var results: [ResultImage]
    /// What the endpoint reported it cost, USD.
    public var reportedCost: Decimal?
    /// Submissions sent (more than one after retries the client made).
    public var submissions: Int
    /// Status polls made.
    public var polls: Int
    /// What was wrong with the answer and ignored.
    public var warnings: [String]
    /// Read back from a run's store (fetched again), not answered now.
    public var recorded: Bool

    /// An answer with these parts.
    public init(
        jobID: String?, results: [ResultImage], reportedCost: Decimal?, submissions: Int = 1, polls: Int = 0,
        warnings: [String] = [], recorded: Bool = false
    ) {
        self.jobID = jobID
        self.results = results
        self.reportedCost = reportedCost
        self.submissions = submissions
        self.polls = polls
        self.warnings = warnings
        self.recorded = recorded
    }

    /// The client's account of a job.
    public init(_ job: JobResult) {
        self.init(
            jobID: job.requestID, results: job.images, reportedCost: job.reportedCost, submissions: job.submissions,
            polls: job.polls, warnings: job.warnings)
    }
}

/// Where an earlier run left a request, as its store recorded it.
public enum RecordedRequest: Sendable, Equatable {
    /// Nothing yet: a new request.
    case new
    /// Being sent when the run stopped: it may have reached the endpoint.
    case sending
    /// Accepted as job `jobID`: to be asked about, never sent again.
    case accepted(jobID: String)
    /// Answered with results (links): to be fetched, never paid for again.
    case answered(EndpointAnswer)
    /// Done: its outputs were written.
    case completed(outputs: [String])
    /// Failed before anything was billed.
    case failed(reason: String)
    /// Sent without a usable answer: it may have been billed.
    case uncertain(reason: String)
    /// Billed and its results lost; `answer` holds the links still recorded.
    case lost(reason: String, answer: EndpointAnswer?)

    /// What `job`'s row records.
    public init(_ job: LedgerJob) {
        let links = job.resultURLList
        let answer =
            links.isEmpty
            ? nil
            : EndpointAnswer(
                jobID: job.requestID, results: links.map { .url($0) }, reportedCost: job.reportedCost, submissions: 0,
                recorded: true)
        let reason = job.error ?? "no reason recorded"
        switch job.state {
        case .pending: self = .new
        case .sending: self = .sending
        case .accepted: self = job.requestID.map { .accepted(jobID: $0) } ?? .uncertain(reason: "accepted without a recorded job id")
        case .answered: self = answer.map { .answered($0) } ?? .lost(reason: "its results were not recorded", answer: nil)
        case .completed: self = .completed(outputs: job.outputPaths)
        case .failed: self = .failed(reason: reason)
        case .uncertain: self = .uncertain(reason: reason)
        case .lost: self = .lost(reason: reason, answer: answer)
        case .cancelled: self = .new  // cancelled before it ran: nothing billed, sent again
        }
    }
}

extension PaidRequest.Start {
    /// A start from `job`'s row, carrying what its attempt may have been billed.
    public init(job: LedgerJob, retryFailed: Bool, retryUncertain: Bool, priced: Bool) {
        self.init(
            RecordedRequest(job), recordedCost: job.state.charge == .none ? nil : job.cost, retryFailed: retryFailed,
            retryUncertain: retryUncertain, priced: priced)
    }
}

/// A request's money as its recorded moves leave it, by the stores' one
/// definition: its state's charge, and its amount (reported, else
/// estimated). An observer of `EditEvent.moved` keeps one per request to
/// show what was (or may have been) billed, whatever the edit's outcome.
public struct RequestMoney: Sendable, Equatable {
    /// The state the last move led to.
    public private(set) var state: JobState = .pending
    /// The attempt's estimate, USD.
    public private(set) var estimate: Decimal?
    /// What the endpoint reported, USD.
    public private(set) var reported: Decimal?
    /// Whether the endpoint's job id was announced (`apply` returned it).
    public private(set) var announced = false
    /// Whether a `sending` move was applied: the money is this attempt's,
    /// not only an earlier run's.
    public private(set) var sentHere = false

    /// Nothing moved yet.
    public init() {}

    /// Where `row` stands.
    public init(_ row: LedgerJob) {
        state = row.state
        estimate = row.estimatedCost
        reported = row.reportedCost
        announced = row.requestID != nil
    }

    /// The amount: reported where the endpoint reported, else estimated.
    public var amount: Decimal? { reported ?? estimate }
    /// What the money is.
    public var charge: JobState.Charge { state.charge }

    /// Applies `move`; returns the endpoint's job id the first time it is known.
    public mutating func apply(_ move: JobMove) -> String? {
        state = move.state
        switch move {
        case .sending(let estimate, _):
            self.estimate = estimate
            reported = nil
            announced = false
            sentHere = true
        case .accepted(let id, _):
            defer { announced = true }
            return announced ? nil : id
        case .answered(let id, _, let cost, _, _):
            reported = cost
            guard let id, !announced else { return nil }
            announced = true
            return id
        case .completed(_, let cost, _):
            reported = cost ?? reported
        default:
            break
        }
        return nil
    }
}
