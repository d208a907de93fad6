import Foundation
import QieClient
import QieProviders
import QieStore
import QieTestSupport
import Testing

@testable import QiePipeline

/// The money model without sockets: a request's state machine fed events,
/// its actions checked.
@Suite("A paid request's state machine decides what may have been billed")
struct PaidRequestTests {
    static let estimate = Decimal(string: "0.02")!
    static let answer = EndpointAnswer(jobID: "job-1", results: [.url("https://r/1.png")], reportedCost: nil)

    static func client(_ kind: ClientError.Kind, status: Int? = nil, jobID: String? = nil) -> EditError {
        .endpoint(ClientError(kind: kind, message: "\(kind)", endpoint: "e", jobID: jobID, status: status, submissions: 1))
    }

    /// A machine started from `start` and fed `events`, with every action it returned.
    static func run(_ start: PaidRequest.Start = .init(), _ events: [PaidRequest.Event]) -> (PaidRequest, [PaidRequest.Action]) {
        var machine = PaidRequest()
        var actions = machine.handle(.start(start))
        for event in events { actions += machine.handle(event) }
        return (machine, actions)
    }

    /// The events that take a new request to the wire.
    static let toWire: [PaidRequest.Event] = [
        .prepared(estimate: estimate, endpoint: "e", results: 1), .reserved, .sendingRecorded,
    ]

    static func settlements(_ actions: [PaidRequest.Action]) -> [Decimal] {
        actions.compactMap { if case .settle(let spent) = $0 { spent } else { nil } }
    }

    static func moves(_ actions: [PaidRequest.Action]) -> [JobMove] {
        actions.compactMap { if case .record(let move) = $0 { move } else { nil } }
    }

    @Test("A new request: reserved, recorded as sending, sent once, polled, fetched, delivered, settled at its reported cost")
    func happyPath() {
        var done = Self.answer
        done.reportedCost = Decimal(string: "0.021")
        let (machine, actions) = Self.run(
            .init(priced: true),
            Self.toWire + [.accepted(jobID: "job-1", submissions: 2), .answered(done), .fetched, .delivered(outputs: ["/o/a.png"])])
        #expect(machine.state == .completed(outputs: ["/o/a.png"], cost: Decimal(string: "0.021")))
        #expect(actions == [
            .reserve(estimate: Self.estimate), .record(.sending(estimate: Self.estimate, carried: 0)), .send,
            .record(.accepted(requestID: "job-1", extraAttempts: 1)), .poll(jobID: "job-1"),
            .record(.answered(requestID: "job-1", results: ["https://r/1.png"], reportedCost: Decimal(string: "0.021"), extraAttempts: 0, polls: 0)),
            .fetch(done), .finish(done),
            .record(.completed(outputs: ["/o/a.png"], reportedCost: Decimal(string: "0.021"), polls: 0)),
            .settle(spent: Decimal(string: "0.021")!), .end,
        ])
        #expect(machine.sent && !machine.holdsReservation)
    }

    @Test("A synchronous answer is fetched at once; inline results are not recorded as links")
    func synchronous() {
        let inline = EndpointAnswer(jobID: nil, results: [.inline(Data([1, 2]))], reportedCost: nil, submissions: 1)
        let (machine, actions) = Self.run(.init(), Self.toWire + [.answered(inline), .fetched, .delivered(outputs: [])])
        #expect(Self.moves(actions).contains(.answered(requestID: nil, results: [], reportedCost: nil, extraAttempts: 0, polls: 0)))
        #expect(Self.settlements(actions) == [Self.estimate])
        if case .completed = machine.state {} else { Issue.record("\(machine.state)") }
    }

    @Test("A failure on the wire is released only when it proves nothing was billed", arguments: [
        (PaidRequestTests.client(.rejected, status: 400), "failed"),
        (PaidRequestTests.client(.rejected, status: 429), "failed"),
        (PaidRequestTests.client(.network), "failed"),
        (PaidRequestTests.client(.badResponse), "failed"),
        (PaidRequestTests.client(.uncertain), "uncertain"),
        (PaidRequestTests.client(.badResponse, status: 502), "uncertain"),
        (PaidRequestTests.client(.rejected, status: 500), "uncertain"),
        (EditError.stopped, "uncertain"),
        (EditError.ledger("disk full"), "uncertain"),
        (PaidRequestTests.client(.rejected, status: 200, jobID: "j"), "lost"),
        (PaidRequestTests.client(.uncertain, status: 500, jobID: "j"), "lost"),
    ])
    func failuresOnTheWire(_ error: EditError, _ expected: String) {
        let (machine, actions) = Self.run(.init(), Self.toWire + [.failed(error)])
        let settled = Self.settlements(actions)
        switch (expected, machine.state) {
        case ("failed", .failed):
            #expect(settled == [0])
            if case .failed = Self.moves(actions).last {} else { Issue.record("\(actions)") }
        case ("uncertain", .uncertain):
            #expect(settled == [Self.estimate])
            if case .uncertain = Self.moves(actions).last {} else { Issue.record("\(actions)") }
        case ("lost", .lost):
            #expect(settled == [Self.estimate])
            if case .resultsLost? = machine.failure {} else { Issue.record("\(String(describing: machine.failure))") }
        default:
            Issue.record("expected \(expected), got \(machine.state)")
        }
        #expect(actions.filter { $0 == .send }.count == 1)
    }

    @Test("An accepted job stays billed: a timeout or a stop leaves it to be asked about again, a failed job is lost")
    func acceptedFailures() {
        for (error, waiting) in [(Self.client(.timedOut, jobID: "job-1"), true), (Self.client(.network), true), (.stopped, true),
                                 (Self.client(.rejected, status: 200, jobID: "job-1"), false), (Self.client(.rejected, status: 404), false)] {
            let (machine, actions) = Self.run(.init(), Self.toWire + [.accepted(jobID: "job-1", submissions: 1), .failed(error)])
            #expect(Self.settlements(actions) == [Self.estimate], "\(error)")
            if waiting {
                #expect(machine.state == .waiting(reason: error.reason(naming: \.name)))
                if case .waiting = Self.moves(actions).last {} else { Issue.record("\(actions)") }
            } else {
                if case .lost = machine.state {} else { Issue.record("\(machine.state)") }
                #expect(Self.moves(actions).last == .lost(reason: error.reason(naming: \.name), keepResults: false, polls: 0))
            }
        }
    }

    @Test("A job given up where the endpoint cancels: released only when it never ran; too late it may be billed; refused it waits")
    func givenUpAndCancelled() {
        let cancelling: [PaidRequest.Event] = [
            .prepared(estimate: Self.estimate, endpoint: "e", results: 1, cancels: true), .reserved, .sendingRecorded,
            .accepted(jobID: "job-1", submissions: 1),
        ]
        for given in [Self.client(.timedOut, jobID: "job-1"), EditError.stopped] {
            let reason = given.reason(naming: \.name)
            var (machine, actions) = Self.run(.init(), cancelling + [.failed(given)])
            #expect(machine.state == .cancelling(jobID: "job-1", reason: reason))
            #expect(actions.last == .cancel(jobID: "job-1"))
            #expect(machine.mayHaveBeenBilled && machine.holdsReservation, "billed until the endpoint says otherwise")

            (machine, actions) = Self.run(.init(), cancelling + [.failed(given), .cancelled(.cancelledBeforeRunning)])
            guard case .cancelled(let said) = machine.state else { Issue.record("\(machine.state)"); continue }
            #expect(said.hasPrefix(reason) && said.contains("before it ran"))
            #expect(Self.settlements(actions) == [0])
            #expect(Self.moves(actions).last == .cancelled(reason: said, polls: 0))
            #expect(!machine.mayHaveBeenBilled)

            (machine, actions) = Self.run(.init(), cancelling + [.failed(given), .cancelled(.tooLate(status: "IN_PROGRESS"))])
            guard case .uncertain(let late) = machine.state else { Issue.record("\(machine.state)"); continue }
            #expect(late.contains("IN_PROGRESS") && late.contains("may have been billed"))
            #expect(Self.settlements(actions) == [Self.estimate])
            #expect(Self.moves(actions).last == .uncertain(reason: late, extraAttempts: 0))

            (machine, actions) = Self.run(.init(), cancelling + [.failed(given), .cancelled(.refused(message: "HTTP 404"))])
            guard case .waiting(let refused) = machine.state else { Issue.record("\(machine.state)"); continue }
            #expect(refused.contains("HTTP 404"))
            #expect(Self.settlements(actions) == [Self.estimate])
        }
        // A job the endpoint failed is not given up: lost, with no cancel.
        let (machine, actions) = Self.run(.init(), cancelling + [.failed(Self.client(.rejected, status: 200, jobID: "job-1"))])
        if case .lost = machine.state {} else { Issue.record("\(machine.state)") }
        #expect(!actions.contains(.cancel(jobID: "job-1")))
        // A cancelled job is sent again by the next run: its record reads as new.
        var row = LedgerJob(
            key: "k", inputPath: "/a.png", inputSHA256: String(repeating: "a", count: 64), inputSize: 1, inputModified: 1, copy: 0,
            endpoint: "e", prompt: "p", options: "{}")
        row.state = .cancelled
        row.requestID = "job-1"
        #expect(RecordedRequest(row) == .new)
    }

    @Test("Results that cannot be fetched or finished stay spent; links kept unless expired or proved unusable")
    func lostResults() {
        let cases: [(EditError, recorded: Bool, atFinish: Bool, keep: Bool)] = [
            (Self.client(.badResponse, status: 404), false, false, false),
            (Self.client(.badResponse, status: 410), false, false, false),
            (Self.client(.network), false, false, true),
            (Self.client(.badResponse), false, false, true),
            (Self.client(.network), true, false, true),
            (Self.client(.badResponse), true, false, false),
            (.result(.init(.notAnImage, "garbage")), false, true, true),
            (.result(.init(.notAnImage, "garbage")), true, true, false),
            (.output(OutputError(path: "/o/a.png", reason: "disk full")), false, true, true),
        ]
        for (error, recorded, atFinish, keep) in cases {
            var answer = Self.answer
            answer.recorded = recorded
            let start: PaidRequest.Start = recorded ? .init(.answered(answer)) : .init()
            let events: [PaidRequest.Event] =
                (recorded ? [.prepared(estimate: Self.estimate, endpoint: "e", results: 1)] : Self.toWire + [.answered(answer)])
                + (atFinish ? [.fetched] : []) + [.failed(error)]
            let (machine, actions) = Self.run(start, events)
            if case .lost = machine.state {} else { Issue.record("\(error): \(machine.state)") }
            #expect(Self.moves(actions).last == .lost(reason: error.reason(naming: \.name), keepResults: keep, polls: 0), "\(error)")
            // A recorded answer was paid for by an earlier run: nothing reserved, nothing settled here.
            #expect(Self.settlements(actions) == (recorded ? [] : [Self.estimate]), "\(error)")
            #expect(actions.filter { $0 == .send }.count == (recorded ? 0 : 1))
            guard case .resultsLost(_, _, let again)? = machine.failure else { Issue.record("\(error)"); continue }
            #expect((again == nil) == keep)
        }
    }

    @Test("More results than asked for: billed, none recorded or fetched")
    func tooManyResults() {
        let many = EndpointAnswer(jobID: "j", results: (0..<5).map { .url("https://r/\($0)") }, reportedCost: nil)
        let (machine, actions) = Self.run(.init(), Self.toWire + [.answered(many)])
        if case .lost = machine.state {} else { Issue.record("\(machine.state)") }
        #expect(!actions.contains { if case .fetch = $0 { true } else { false } })
        #expect(Self.moves(actions).contains(.answered(requestID: "j", results: [], reportedCost: nil, extraAttempts: 0, polls: 0)))
        #expect(Self.settlements(actions) == [Self.estimate])
    }

    @Test("Refusals before the wire send nothing; a refusal or lost lease after reserving releases the money")
    func refusals() {
        let refusal = BudgetRefusal(limit: 1, spent: 1, inFlight: 0, estimate: Self.estimate)
        let prepared = PaidRequest.Event.prepared(estimate: Self.estimate, endpoint: "e", results: 1)
        var (machine, actions) = Self.run(.init(), [prepared, .refused(refusal)])
        #expect(machine.state == .refused(refusal) && Self.settlements(actions).isEmpty && !actions.contains(.send))
        (machine, actions) = Self.run(.init(), [prepared, .reserved, .refused(refusal)])
        #expect(machine.state == .refused(refusal) && Self.settlements(actions) == [0] && !actions.contains(.send))
        (machine, actions) = Self.run(.init(), [prepared, .reserved, .yielded])
        #expect(machine.state == .yielded && Self.settlements(actions) == [0] && Self.moves(actions) == [.sending(estimate: Self.estimate, carried: 0)])
        (machine, actions) = Self.run(.init(priced: true), [.prepared(estimate: nil, endpoint: "e", results: 1)])
        if case .unpriced? = machine.failure {} else { Issue.record("\(String(describing: machine.failure))") }
        #expect(!actions.contains { if case .reserve = $0 { true } else { false } })
        (machine, actions) = Self.run(.init(), [.withdrawn])
        #expect(machine.state == .withdrawn && actions == [.end])
    }

    @Test("Started from a record: done jobs end, accepted ones are asked about, answered ones fetched, ended ones sent again only when asked")
    func startingFromRecords() {
        let prepared = PaidRequest.Event.prepared(estimate: Self.estimate, endpoint: "e", results: 1)
        var (machine, actions) = Self.run(.init(.completed(outputs: ["/o"])), [])
        #expect(machine.state == .endedEarlier(reason: nil) && actions == [.end])
        (machine, actions) = Self.run(.init(.accepted(jobID: "j")), [prepared])
        #expect(actions == [.poll(jobID: "j")] && !machine.holdsReservation)
        (machine, actions) = Self.run(.init(.answered(Self.answer)), [prepared])
        #expect(actions == [.fetch(Self.answer)])
        (machine, actions) = Self.run(.init(.lost(reason: "x", answer: Self.answer)), [prepared])
        #expect(actions == [.fetch(Self.answer)], "recorded links are fetched, whatever retryFailed says")
        (machine, actions) = Self.run(.init(.failed(reason: "HTTP 400")), [prepared])
        if case .failedEarlier? = machine.failure {} else { Issue.record("\(String(describing: machine.failure))") }
        (machine, actions) = Self.run(.init(.failed(reason: "HTTP 400"), retryFailed: true), [prepared])
        #expect(actions == [.reserve(estimate: Self.estimate)] && machine.carried == 0)
        (machine, actions) = Self.run(.init(.uncertain(reason: "HTTP 500"), recordedCost: Self.estimate), [prepared])
        if case .uncertainEarlier? = machine.failure {} else { Issue.record("\(String(describing: machine.failure))") }
        (machine, actions) = Self.run(.init(.uncertain(reason: "HTTP 500"), recordedCost: Self.estimate, retryUncertain: true), Self.toWire)
        #expect(Self.moves(actions) == [.sending(estimate: Self.estimate, carried: Self.estimate)])
        (machine, actions) = Self.run(.init(.lost(reason: "expired", answer: nil), recordedCost: Self.estimate, retryFailed: true), Self.toWire)
        #expect(Self.moves(actions) == [.sending(estimate: Self.estimate, carried: Self.estimate)])
        (machine, actions) = Self.run(.init(.lost(reason: "expired", answer: nil), recordedCost: Self.estimate), [])
        if case .resultsLost(_, _, .retryFailed?)? = machine.failure {} else { Issue.record("\(String(describing: machine.failure))") }
        // Caught sending by a kill: recorded as uncertain, not sent.
        (machine, actions) = Self.run(.init(.sending, recordedCost: Self.estimate), [])
        #expect(Self.moves(actions) == [.uncertain(reason: "the run sending it was stopped before hearing back", extraAttempts: 0)])
        #expect(!actions.contains(.send))
        // An uncertain job tried again that fails before it is sent keeps its record (and its money).
        (machine, actions) = Self.run(
            .init(.uncertain(reason: "HTTP 500"), recordedCost: Self.estimate, retryUncertain: true),
            [.failed(.input(.init(.unreadable, "changed")))])
        #expect(Self.moves(actions).isEmpty && !actions.contains(.send))
        // A recorded job that cannot be picked up now keeps its record.
        (machine, actions) = Self.run(.init(.accepted(jobID: "j")), [.failed(.input(.init(.unreadable, "gone")))])
        #expect(Self.moves(actions).isEmpty)
        if case .waiting = machine.state {} else { Issue.record("\(machine.state)") }
    }

    // MARK: Every event in every state, and random sequences

    /// One event of each kind.
    static let allEvents: [PaidRequest.Event] = [
        .prepared(estimate: estimate, endpoint: "e", results: 1),
        .prepared(estimate: estimate, endpoint: "e", results: 1, cancels: true), .reserved, .sendingRecorded,
        .refused(BudgetRefusal(limit: 1, spent: 1, inFlight: 0, estimate: estimate)), .yielded, .withdrawn,
        .accepted(jobID: "job-1", submissions: 1), .answered(answer),
        .answered(EndpointAnswer(jobID: "job-2", results: [.url("a"), .url("b")], reportedCost: Decimal(string: "0.5"))),
        .fetched, .delivered(outputs: ["/o"]), .failed(client(.rejected, status: 400)), .failed(client(.uncertain)),
        .failed(client(.timedOut, jobID: "job-1")), .failed(client(.badResponse, status: 404)), .failed(.stopped),
        .cancelled(.cancelledBeforeRunning), .cancelled(.tooLate(status: "IN_PROGRESS")), .cancelled(.refused(message: "m")),
    ]

    /// The starts a machine can have.
    static let allStarts: [PaidRequest.Start] = [
        .init(), .init(priced: true), .init(.sending, recordedCost: estimate),
        .init(.sending, recordedCost: estimate, retryUncertain: true), .init(.accepted(jobID: "j")),
        .init(.answered(answer)), .init(.completed(outputs: [])), .init(.failed(reason: "r")),
        .init(.failed(reason: "r"), retryFailed: true), .init(.uncertain(reason: "r"), recordedCost: estimate, retryUncertain: true),
        .init(.lost(reason: "r", answer: nil), recordedCost: estimate, retryFailed: true), .init(.lost(reason: "r", answer: answer)),
    ]

    /// What must hold over any life of a machine.
    static func checkInvariants(_ start: PaidRequest.Start, _ events: [PaidRequest.Event], context: String) {
        var machine = PaidRequest()
        var actions = machine.handle(.start(start))
        var sends = 0
        var settles: [Decimal] = []
        var reserved = false
        var billed = false  // the endpoint answered it, or accepted it and did not confirm a cancel before it ran
        var accepted = false
        var cancelled = false  // the endpoint confirmed a cancel before it ran
        var sendRecorded = false  // this attempt was recorded as leaving
        var finalActions = 0
        for event in events {
            let wasFinal = machine.state.isFinal
            let more = machine.handle(event)
            if wasFinal { finalActions += more.count }
            for action in more {
                switch action {
                case .send: sends += 1
                case .settle(let spent): settles.append(spent)
                case .record(let move):
                    if move.state == .answered { billed = true }
                    if move.state == .accepted { accepted = true }
                    if move.state == .cancelled { cancelled = true }
                    #expect(!((billed || accepted) && move.state == .failed), "a billed request recorded as failed: \(context)")
                    // Money an earlier attempt may have been billed is never recorded away.
                    if move.state == .failed, !sendRecorded {
                        switch start.recorded {
                        case .sending, .uncertain, .lost: Issue.record("a charging record overwritten as failed: \(context)")
                        default: break
                        }
                    }
                    if case .sending = move { sendRecorded = true }
                default: break
                }
            }
            if case .reserved = event, !more.isEmpty { reserved = true }
            actions += more
        }
        if accepted && !cancelled { billed = true }
        #expect(!(cancelled && billed), "cancelled after results came: \(context)")
        #expect(sends <= 1, "sent \(sends) times: \(context)")
        #expect(sends == 0 || actions.contains(.record(.sending(estimate: machine.estimate, carried: machine.carried))), "sent unrecorded: \(context)")
        #expect(settles.count <= 1, "settled \(settles.count) times: \(context)")
        #expect(settles.isEmpty || reserved, "settled without a reservation: \(context)")
        #expect(finalActions == 0, "a finished machine acted: \(context)")
        if let spent = settles.first {
            // Money that may have been billed is never released.
            if machine.sent, spent == 0 {
                switch machine.state {
                case .failed: break
                case .cancelled: #expect(accepted, "cancelled without a job: \(context)")
                default: Issue.record("released after sending, ending \(machine.state): \(context)")
                }
                #expect(!billed, "a billed request released: \(context)")
            }
            if case .completed(_, let cost) = machine.state { #expect(spent == cost ?? 0, "settled \(spent), cost \(String(describing: cost)): \(context)") }
            if billed { #expect(spent == machine.amount ?? 0, "billed settled at \(spent): \(context)") }
        }
    }

    @Test("Every event in every state reached from every start keeps the invariants")
    func everyEventInEveryState() {
        for (startIndex, start) in Self.allStarts.enumerated() {
            // Every prefix of events that moves the machine, then every event.
            var paths: [[PaidRequest.Event]] = [[]]
            var explored = 0
            while let path = paths.popLast(), explored < 4000 {
                explored += 1
                for event in Self.allEvents {
                    Self.checkInvariants(start, path + [event], context: "start \(startIndex), \(path.count + 1) events")
                    var machine = PaidRequest()
                    _ = machine.handle(.start(start))
                    var moved = false
                    for step in path { _ = machine.handle(step) }
                    let before = machine.state
                    _ = machine.handle(event)
                    moved = machine.state != before
                    if moved, !machine.state.isFinal, path.count < 8 { paths.append(path + [event]) }
                }
            }
        }
    }

    @Test("Random event sequences keep the invariants (the seed is printed)")
    func randomSequences() {
        let seed = SeededGenerator.seed(printedAs: "PaidRequestTests.randomSequences")
        var generator = SeededGenerator(seed: seed)
        for round in 0..<3000 {
            let start = Self.allStarts[Int(generator.next() % UInt64(Self.allStarts.count))]
            let length = Int(generator.next() % 12)
            let events = (0..<length).map { _ in Self.allEvents[Int(generator.next() % UInt64(Self.allEvents.count))] }
            Self.checkInvariants(start, events, context: "seed \(seed), round \(round)")
        }
    }
}

