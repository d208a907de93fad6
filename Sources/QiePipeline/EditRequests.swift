import Foundation
import QieClient
import QieStore

/// When an accepted job was submitted and accepted, for its wait's deadline
/// and the poll planner.
struct WaitStart: Sendable {
    var submittedAt: ContinuousClock.Instant
    var acceptedAt: ContinuousClock.Instant
    /// Submissions it took, retries the client made included.
    var submissions: Int
}

/// The state machines of one edit's requests, driven together. Each
/// machine's actions are carried out in order: moves are recorded (through
/// the edit's events) and reservations settled at once; the I/O steps
/// (send, poll, fetch) wait for `drive`, and each step's outcome is fed back
/// as the machine's next event, replacing what was left of its actions.
actor EditRequests {
    private var machines: [PaidRequest]
    /// Steps returned by each machine and not yet carried out.
    private var steps: [[PaidRequest.Action]]
    private var reservations: [Int: BudgetReservation] = [:]
    private var waits: [Int: WaitStart] = [:]
    private var fetched: [Int: [Data]] = [:]
    private let events: @Sendable (EditEvent) async throws -> Void
    private var budget: (any EditBudget)?

    init(count: Int, events: @escaping @Sendable (EditEvent) async throws -> Void) {
        machines = Array(repeating: PaidRequest(), count: count)
        steps = Array(repeating: [], count: count)
        self.events = events
    }

    // MARK: Feeding

    /// Feeds `event` to request `index` and carries out what it asks at
    /// once (records, settlements); I/O steps wait for `drive`.
    func feed(_ index: Int, _ event: PaidRequest.Event) async {
        var actions = machines[index].handle(event)
        steps[index] = []
        while !actions.isEmpty {
            let action = actions.removeFirst()
            switch action {
            case .record(let move):
                do {
                    try await record(move, index: index)
                } catch {
                    // Only `sending` is refused by a store: the request does not leave.
                    actions = machines[index].handle(Self.refusal(error))
                    steps[index] = []
                    continue
                }
                if case .sending = move { actions = machines[index].handle(.sendingRecorded) }
            case .settle(let spent):
                if let reservation = reservations.removeValue(forKey: index), let budget {
                    // Settled even when the edit was cancelled meanwhile (a
                    // client gone, a run stopped): a store's write would
                    // refuse a cancelled task, and a release must not be lost.
                    await Task { await budget.settle(reservation, spent: spent) }.value
                }
            case .end:
                break
            case .reserve, .send, .poll, .cancel, .fetch, .finish:
                steps[index].append(action)
            }
        }
    }

    /// Feeds `event` to every request (that `matching` picks).
    func feedAll(_ event: PaidRequest.Event, where matching: (PaidRequest) -> Bool = { _ in true }) async {
        for index in machines.indices where matching(machines[index]) { await feed(index, event) }
    }

    /// Records `move` through the edit's events. It runs to its end even
    /// when the edit is cancelled meanwhile (a client gone, a run stopped):
    /// what may have been billed is written down either way.
    private func record(_ move: JobMove, index: Int) async throws {
        let events = self.events
        let recording = Task { try await events(.moved(index: index, move)) }
        if case .sending = move {
            try await recording.value
        } else {
            // A store that fails to record a later move leaves its record
            // behind; the money it shows is never less than what was spent.
            _ = try? await recording.value
        }
    }

    /// The event a refused `sending` record stands for.
    private static func refusal(_ error: any Error) -> PaidRequest.Event {
        switch error {
        case EditError.overBudget(let refusal):
            return .refused(refusal)
        case StoreError.costLimit(let limit, let spent, let inFlight, let estimate):
            return .refused(BudgetRefusal(limit: limit, spent: spent, inFlight: inFlight, estimate: estimate))
        case StoreError.leaseLost:
            return .yielded
        default:
            let failure = EditError.wrapping(error)
            if case .ledger = failure { return .failed(failure) }
            return .failed(.ledger("\(failure.reason(naming: \.name))"))
        }
    }

    // MARK: Money

    /// The requests waiting for their money, with their estimates (taken: the caller reserves them).
    func pendingReservations() -> [(index: Int, estimate: Decimal?)] {
        var pending: [(index: Int, estimate: Decimal?)] = []
        for index in machines.indices {
            guard case .reserve(let estimate)? = steps[index].first else { continue }
            steps[index].removeFirst()
            pending.append((index, estimate))
        }
        return pending
    }

    /// Request `index` holds `reservation` with `budget` until it settles.
    func hold(_ reservation: BudgetReservation, for index: Int, budget: any EditBudget) {
        self.budget = budget
        reservations[index] = reservation
    }

    // MARK: Driving

    /// Carries out request `index`'s I/O steps until it is finishing or ended.
    nonisolated func drive(_ index: Int, _ stages: Editor.Stages) async {
        while let step = await nextStep(index) {
            switch step {
            case .send:
                let (event, waits) = await stages.send()
                if let waits { await setWaits(waits, for: index) }
                await feed(index, event)
            case .poll(let id):
                await feed(index, await stages.poll(id, waits: await waitStart(index)))
            case .cancel(let id):
                await feed(index, .cancelled(await stages.cancel(id)))
            case .fetch(let answer):
                switch await stages.fetch(answer) {
                case .success(let data):
                    await setDownloads(data, for: index)
                    await feed(index, .fetched)
                case .failure(let error):
                    await feed(index, .failed(error))
                }
            default:
                return
            }
        }
    }

    private func nextStep(_ index: Int) -> PaidRequest.Action? {
        guard let step = steps[index].first else { return nil }
        switch step {
        case .send, .poll, .cancel, .fetch:
            steps[index].removeFirst()
            return step
        default:
            return nil
        }
    }

    private func setWaits(_ start: WaitStart, for index: Int) { waits[index] = start }
    private func waitStart(_ index: Int) -> WaitStart? { waits[index] }
    private func setDownloads(_ data: [Data], for index: Int) { fetched[index] = data }

    // MARK: Reading

    /// Whether any request matches.
    func any(_ matching: (PaidRequest) -> Bool) -> Bool { machines.contains(where: matching) }
    /// Whether every request matches.
    func all(_ matching: (PaidRequest) -> Bool) -> Bool { machines.allSatisfy(matching) }
    /// Whether every request has ended.
    func allFinal() -> Bool { machines.allSatisfy(\.state.isFinal) }
    /// The first request's failure, in request order.
    func firstFailure() -> EditError? { machines.lazy.compactMap(\.failure).first }

    /// Every downloaded result, in request order.
    func downloads() -> [Data] { machines.indices.flatMap { fetched[$0] ?? [] } }

    /// Request `index`'s downloaded results.
    func downloads(of index: Int) -> [Data] { fetched[index] ?? [] }

    /// Whether request `index` has its results and is finishing.
    func isFinishing(_ index: Int) -> Bool {
        if case .finishing = machines[index].state { true } else { false }
    }

    /// The answers of the requests that are finishing, in request order.
    func answers() -> [EndpointAnswer] {
        machines.compactMap { if case .finishing(let answer) = $0.state { answer } else { nil } }
    }

    /// How the edit ended: its first failure, and whether any request may
    /// have been billed (a request the endpoint refused was not).
    func outcome() -> EditorOutcome {
        EditorOutcome(
            failure: firstFailure() ?? .stopped, mayHaveBeenBilled: machines.contains(where: \.mayHaveBeenBilled),
            refusedBeforeAcceptance: !machines.isEmpty && machines.allSatisfy(\.refusedBeforeAcceptance))
    }
}

/// A failed edit's error, whether any of its requests may have been billed,
/// and whether every one was refused before the endpoint took it.
struct EditorOutcome {
    var failure: EditError
    var mayHaveBeenBilled: Bool
    var refusedBeforeAcceptance: Bool
}
