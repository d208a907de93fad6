import Foundation
import QieClient
import QieImaging
import QieProviders
import QieWebhooks
import Synchronization

/// Where an image comes from.
public enum ImageSource: Sendable, Equatable {
    /// A file on disk (read when it is prepared).
    case file(String)
    /// Encoded image bytes held in memory.
    case data(Data)
}

/// One edit's inputs: the image to edit, reference images sent after it, and
/// what to ask where it differs from the `EditOptions`.
public struct EditInput: Sendable {
    /// The image to edit: planned for the endpoint, padded or cropped.
    public var image: ImageSource
    /// Images sent after it, normalised but not resized.
    public var references: [ImageSource]
    /// The instruction; nil takes the options' prompt.
    public var prompt: String?
    /// The seed; nil takes the options' seed.
    public var seed: Int?
    /// What to keep out; nil takes the options' negative prompt.
    public var negativePrompt: String?
    /// The size to deliver the results at, whatever sizes the endpoint
    /// accepts: the image is first fitted into it (the options' fit, position
    /// and background), that frame is planned for the endpoint, and each
    /// result is restored to exactly this size. Nil: the options decide (the
    /// input's own size with `restore`). An OpenAI-style `size`.
    public var size: PixelSize?
    /// An OpenAI-style mask for endpoints that edit the whole image: the
    /// results are composited locally, the edit kept where the mask is
    /// transparent and the input where it is opaque (partial alpha blends).
    /// It needs an alpha channel and the input's shape (it may be scaled);
    /// both are checked before anything is sent. With `size`, the mask is
    /// fitted into the frame exactly as the input is, its padding transparent
    /// (the edit shows where there was no input to keep).
    public var mask: ImageSource?

    /// An input; nil fields take the options' values.
    public init(
        image: ImageSource, references: [ImageSource] = [], prompt: String? = nil, seed: Int? = nil,
        negativePrompt: String? = nil, size: PixelSize? = nil, mask: ImageSource? = nil
    ) {
        self.mask = mask
        self.image = image
        self.references = references
        self.prompt = prompt
        self.seed = seed
        self.negativePrompt = negativePrompt
        self.size = size
    }
}

/// An edited image, converted and restored as asked.
public struct EditedImage: Sendable, Codable, Equatable {
    /// The encoded bytes.
    public var data: Data
    /// Their format.
    public var format: OutputFormat
    /// Their size in pixels.
    public var size: PixelSize
    /// A small copy for showing, when `EditOptions.preview` asked for one
    /// and it could be made. Not stored: a result read back has none.
    public var preview: Data?

    /// An image of `format` and `size`, with `preview` when one was made.
    public init(data: Data, format: OutputFormat, size: PixelSize, preview: Data? = nil) {
        self.data = data
        self.format = format
        self.size = size
        self.preview = preview
    }

    private enum CodingKeys: String, CodingKey { case data, format, size }
}

/// Seconds spent in each step of an edit.
public struct EditTimings: Sendable, Codable, Equatable {
    /// Reading and preparing the inputs.
    public var prepare: Double = 0
    /// Prepared, waiting for the caller to let it on the wire (`EditHooks.prepared`).
    public var queued: Double = 0
    /// From the first submission to the last answer (the endpoint's time and the waits).
    public var endpoint: Double = 0
    /// Downloading or decoding the results.
    public var fetch: Double = 0
    /// Converting and restoring.
    public var finish: Double = 0
    /// The whole edit.
    public var total: Double = 0

    /// All zero.
    public init() {}

    private enum CodingKeys: String, CodingKey { case prepare, queued, endpoint, fetch, finish, total }

    /// Reads timings written by any version (`queued` came later).
    public init(from decoder: any Decoder) throws {
        let values = try decoder.container(keyedBy: CodingKeys.self)
        prepare = try values.decode(Double.self, forKey: .prepare)
        queued = try values.decodeIfPresent(Double.self, forKey: .queued) ?? 0
        endpoint = try values.decode(Double.self, forKey: .endpoint)
        fetch = try values.decode(Double.self, forKey: .fetch)
        finish = try values.decode(Double.self, forKey: .finish)
        total = try values.decode(Double.self, forKey: .total)
    }
}

/// What one edit produced: the images, and what was done and paid to get them.
public struct EditResult: Sendable, Codable {
    /// The results, already converted and restored.
    public var images: [EditedImage]
    /// The endpoint (profile id).
    public var endpoint: String
    /// The endpoint's model.
    public var model: String
    /// The prompt sent.
    public var prompt: String
    /// The seed sent, if any.
    public var seed: Int?
    /// The input's header.
    public var source: ImageInfo
    /// How the input was sized for the endpoint, and how to undo it.
    public var plan: SizePlan
    /// The restore applied to the results, if any.
    public var restored: RestoreMode?
    /// How results came back.
    public var flow: ProviderProfile.Flow
    /// The endpoint's ids for the requests (where it gave them).
    public var requestIDs: [String]
    /// Submissions sent, over all requests.
    public var submissions: Int
    /// Status polls made, over all requests.
    public var polls: Int
    /// The estimate before sending, USD (all requests); nil when unpriced.
    public var estimatedCost: Decimal?
    /// The cost the endpoint reported, USD; nil unless every request reported one.
    public var reportedCost: Decimal?
    /// Seconds per step.
    public var timings: EditTimings
    /// What was wrong with the endpoint's answers and ignored (a reported
    /// cost that is not an amount >= 0), in words.
    public var warnings: [String] = []

    /// How the request's images were encoded when, as prepared, the request
    /// was over the endpoint's payload limit (for example `JPEG quality 70`);
    /// nil when they went as prepared.
    public var requestEncoding: String?

    /// What the edit cost: the endpoint's figure where it reported one, else the estimate.
    public var cost: Decimal? { reportedCost ?? estimatedCost }
}

/// What an edit does around its requests: a budget, an idempotency key,
/// where an earlier run left it, where its results go, and one typed stream
/// of what happened. What may be billed is decided by each request's state
/// machine (`PaidRequest`); the hooks only carry its decisions out and
/// observe them. Every hook is optional.
public struct EditHooks: Sendable {
    /// Reserves the estimate before sending; an edit it refuses throws
    /// `EditError.overBudget` and sends nothing. What is settled is what
    /// was (or may have been) billed: an accepted request whose results are
    /// lost stays spent.
    public var budget: (any EditBudget)?
    /// Makes a retried edit with the same key return the first one's result
    /// (or failure, once anything may have been billed) without calling the
    /// endpoint again.
    public var idempotency: (store: any IdempotencyStore, key: String)?
    /// Where an earlier run left this edit's request (an edit of one
    /// request: a folder run's job), and whether ended ones are tried again.
    public var resume: PaidRequest.Start?
    /// A limit outside the editor (a folder run's cost limit, checked by its
    /// store when `sending` is recorded) needs each request priced.
    public var costLimited = false
    /// Where the results go before the edit counts as done (a folder run
    /// writes its files and sidecar here): returns what was written. A
    /// failure here leaves the requests billed and their results to be
    /// fetched again. Nil: the results are returned in memory only.
    public var deliver: (@Sendable (EditResult) async throws -> [String])?
    /// What happens, in order, as typed events: each is awaited before the
    /// edit goes on, so a store commits a move before the next irreversible
    /// step. Throwing at `.prepared` withdraws the edit (nothing reserved or
    /// sent); throwing at a `.moved(_, .sending)` keeps the request from
    /// leaving (`EditError.overBudget` or a store's cost-limit refusal
    /// refuses it, a lost lease yields it to another worker).
    public var events: (@Sendable (EditEvent) async throws -> Void)?

    /// These hooks.
    public init(
        budget: (any EditBudget)? = nil, idempotency: (store: any IdempotencyStore, key: String)? = nil,
        resume: PaidRequest.Start? = nil, events: (@Sendable (EditEvent) async throws -> Void)? = nil
    ) {
        self.budget = budget
        self.idempotency = idempotency
        self.resume = resume
        self.events = events
    }
}

/// What happens during one edit, in order.
public enum EditEvent: Sendable {
    /// The edit starts: its idempotency key (if any) is this edit's, and
    /// nothing is read, reserved or sent yet. A caller that limits the edits
    /// running at once takes a place here, or again here after giving it
    /// back at `.waitingForKey`; throwing ends the edit, and the key is given up.
    case started
    /// Another request holds the edit's idempotency key, and the edit waits
    /// for it to end before `.started` (or before the first one's answer is
    /// returned): a caller that took a place among the edits running can
    /// give it back here and take one again at `.started`. Thrown errors
    /// are ignored.
    case waitingForKey
    /// The input is prepared; nothing is reserved or sent yet. A caller that
    /// limits the edits on the wire waits here, so later inputs are prepared
    /// while earlier ones are with the endpoint (a folder run does).
    case prepared
    /// Routing sent the edit to `endpoint` (a profile id), the best ranked
    /// for this input; `after` is the endpoint tried before it, which
    /// refused the request before taking it (nothing billed there), and why.
    /// A folder run records where the job goes before it is sent there.
    case routed(endpoint: String, after: (endpoint: String, reason: String)?)
    /// Request `index` moved, as its state machine decided: the move a
    /// store records (`sending`, `accepted`, `answered`, `completed`,
    /// `failed`, `uncertain`, `lost`, `waiting`).
    case moved(index: Int, JobMove)
    /// Every result is downloaded; converting, restoring and delivering are
    /// local work. A caller that limits the edits on the wire frees the
    /// edit's place here.
    case fetched
    /// One result is converted and restored, before the edit's others may
    /// be: an edit of several requests (`numImages` on an endpoint without
    /// a count field) finishes each request's results as soon as they are
    /// downloaded, while the others are still with the endpoint, so a
    /// caller streaming results can send each one as it is ready. The edit
    /// may still fail afterwards (another request failing, its delivery);
    /// the image was billed either way. Thrown errors are ignored.
    case imageReady(ReadyImage)
}

/// A result finished before the whole edit is (`EditEvent.imageReady`).
public struct ReadyImage: Sendable {
    /// Its place in `EditResult.images`.
    public var index: Int
    /// The image, converted and restored as the edit's result will hold it.
    public var image: EditedImage
    /// No other result of the edit is still to come: the edit's result
    /// follows (unless it fails).
    public var isLast: Bool

    /// A finished result.
    public init(index: Int, image: EditedImage, isLast: Bool) {
        self.index = index
        self.image = image
        self.isLast = isLast
    }
}

/// The key and address an endpoint is called with, from the environment.
extension EditOptions {
    /// The address requests go to: `baseURL`, else the endpoint's base-URL
    /// variable in `environment` (when set and not empty), else the
    /// endpoint's documented address. This is where the key is sent.
    public func address(on profile: ProviderProfile, environment: [String: String]) -> String {
        chosenBaseURL(on: profile, environment: environment) ?? profile.baseURL
    }

    /// `baseURL`, else the endpoint's base-URL variable when set and not empty.
    func chosenBaseURL(on profile: ProviderProfile, environment: [String: String]) -> String? {
        baseURL ?? environment[profile.baseURLVariable].flatMap { $0.isEmpty ? nil : $0 }
    }
}

struct EndpointAccess: Sendable {
    var apiKey: String
    var baseURL: String?
    var signingSecret: String?

    /// The key from the profile's variable (refused when unset or empty), the
    /// base URL from the options or the profile's base-URL variable.
    init(profile: ProviderProfile, options: EditOptions, environment: [String: String]) throws(EditError) {
        guard let key = environment[profile.auth.keyVariable], !key.isEmpty else {
            throw .missingKey(endpoint: profile.id, variable: profile.auth.keyVariable)
        }
        apiKey = key
        baseURL = options.chosenBaseURL(on: profile, environment: environment)
        signingSecret = profile.callback.flatMap { environment[$0.secretVariable] }
        if let baseURL { try Self.check(baseURL, allowInsecureHTTP: options.allowInsecureHTTP) }
    }

    /// A base URL the key may be sent to: `https`, or `http` to this machine
    /// (a local emulator or proxy), or `http` anywhere when allowed.
    static func check(_ baseURL: String, allowInsecureHTTP: Bool) throws(EditError) {
        guard let url = URL(string: baseURL), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty else {
            throw .setting(SettingError(.baseURL, value: baseURL, .invalid(expected: "an http(s) URL such as https://api.example.com")))
        }
        if url.user != nil || url.password != nil {
            throw .setting(SettingError(
                .baseURL, value: "\(scheme)://…@\(host)", .explained("carries a user name or password; give the key in the environment instead")))
        }
        switch scheme {
        case "https": return
        case "http":
            if allowInsecureHTTP || NetworkAddress.isLoopback(host: host) { return }
            throw .setting(SettingError(
                .baseURL, value: baseURL,
                .explained("is plain http to \(host), which is not this machine: the API key would cross the network unencrypted; use https, or \(setting: .allowInsecureHTTP) if the network is yours")))
        default:
            throw .setting(SettingError(.baseURL, value: baseURL, .invalid(expected: "an http or https URL")))
        }
    }
}

/// The edit path: prepare -> send -> wait -> fetch -> convert -> restore, for
/// images in memory or in files, with no folder or ledger. Folder runs
/// (`EditRun`) and servers built on the library drive this same path.
///
/// Make one with `Editor.with(_:environment:connections:_:)`, which owns the
/// HTTP client and, for the callback and event-stream flows, the listener,
/// for as long as the closure runs. However many edits run at once, image
/// work (decode, resize, encode) runs one image per core, in the order the
/// edits asked for it, so memory stays bounded by the cores, not the edits.
public final class Editor: Sendable {
    /// The options edits use unless a call gives its own.
    public let options: EditOptions
    /// The HTTP client (one pool for every edit).
    public let client: EditClient
    private let environment: [String: String]
    let signals: JobSignals?
    /// One image per core in decode, resize and encode, first come first served.
    private let imaging = Turnstile(capacity: ProcessInfo.processInfo.activeProcessorCount)
    /// Seconds each endpoint (by id) took over the edits it completed, and
    /// how many, for routing's `fastest` (a sum, so a long-lived editor keeps no history).
    private let durations = Mutex<[String: (seconds: Double, edits: Int)]>([:])

    /// The mean seconds each endpoint (by id) took with the requests of the
    /// edits it completed through this editor.
    public var meanDurations: [String: Double] {
        durations.withLock { $0.mapValues { $0.seconds / Double(max(1, $0.edits)) } }
    }

    private init(options: EditOptions, client: EditClient, environment: [String: String], signals: JobSignals?) {
        self.options = options
        self.client = client
        self.environment = environment
        self.signals = signals
    }

    /// Runs blocking image work off the cooperative pool, one image per core:
    /// the edits that asked first are prepared (or finished) first, and many
    /// edits at once never hold more than one decoded image per core.
    /// `urgent` work (preparing what an endpoint will be sent) goes before
    /// finishing results, so a request is never held back by a result that
    /// is already in.
    private func imagingWork<T: Sendable>(urgent: Bool = false, _ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await imaging.through(urgent: urgent) { try await ImagingRuntime.offload(work) }
    }

    /// Runs `body` with an editor for `options`: the HTTP client keeps
    /// `connections` connections per endpoint (at least the edits meant to be
    /// in flight at once), and with the callback or event-stream flow the
    /// listener runs (and is ready) before `body` starts. Everything is
    /// closed when `body` returns or throws. Keys come from `environment`.
    public static func with<T: Sendable>(
        _ options: EditOptions, environment: [String: String] = ProcessInfo.processInfo.environment,
        connections: Int = 8, clock: any QieClock = SystemClock(), _ body: @Sendable (Editor) async throws -> T
    ) async throws -> T {
        let client = makeClient(options, connections: connections, clock: clock)
        do {
            let result = try await with(options, environment: environment, client: client, body)
            try? await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// An HTTP client with the options' timeouts and `connections`
    /// connections per endpoint, its waits (polls, retries, deadlines) read
    /// from `clock`: one for a whole process, shared by its editors
    /// (`with(_:environment:client:_:)`), shut down by its owner.
    public static func makeClient(_ options: EditOptions, connections: Int = 8, clock: any QieClock = SystemClock()) -> EditClient {
        EditClient(
            connectTimeout: .milliseconds(Int64(options.timeouts.connect * 1000)),
            requestTimeout: .milliseconds(Int64(options.timeouts.request * 1000)), connectionsPerHost: max(8, connections),
            clock: clock)
    }

    /// Runs `body` with an editor for `options` over `client`, which the
    /// caller owns (one client per process, shared by every editor: the
    /// gateway's models share one pool). With the callback or event-stream
    /// flow the listener runs (and is ready) before `body` starts, and stops
    /// when it returns or throws; `client` stays open.
    public static func with<T: Sendable>(
        _ options: EditOptions, environment: [String: String] = ProcessInfo.processInfo.environment, client: EditClient,
        _ body: @Sendable (Editor) async throws -> T
    ) async throws -> T {
        let profile: ProviderProfile
        do { profile = try options.profile() } catch { throw EditError.setting(error) }
        let flow = options.resolvedFlow(for: profile)
        let signals: JobSignals? = flow == .callback || flow == .serverSentEvents ? JobSignals() : nil
        let editor = Editor(options: options, client: client, environment: environment, signals: signals)
        let listener = try signals.map { try editor.listener(profile: profile, flow: flow, signals: $0) } ?? nil
        return try await withThrowingTaskGroup(of: Void.self) { services in
            if let listener {
                let (ready, readiness) = AsyncStream<Result<Void, any Error>>.makeStream()
                services.addTask {
                    do {
                        try await listener { readiness.yield(.success(())) }
                    } catch {
                        readiness.yield(.failure(error))
                    }
                    readiness.finish()
                }
                // Send nothing before the listener is up.
                var iterator = ready.makeAsyncIterator()
                switch await iterator.next() {
                case .failure(let error)?:
                    throw EditError.listener(endpoint: profile.id, flow: flow, reason: "\(error)")
                case nil:
                    throw EditError.listener(endpoint: profile.id, flow: flow, reason: "it stopped at once")
                case .success?:
                    break
                }
            }
            defer { services.cancelAll() }
            return try await body(editor)
        }
    }

    /// The callback listener or event-stream reader `flow` needs, as a
    /// function that runs until cancelled and calls its argument once ready.
    private func listener(profile: ProviderProfile, flow: ProviderProfile.Flow, signals: JobSignals) throws(EditError)
        -> (@Sendable (@escaping @Sendable () -> Void) async throws -> Void)?
    {
        switch flow {
        case .callback:
            let address: (host: String, port: Int)
            do throws(SettingError) {
                guard let callback = options.callback else {
                    throw SettingError(.flow, value: flow.rawValue, .needs([.callbackURL], why: nil))
                }
                address = try callback.listenAddress()
            } catch {
                throw .setting(error)
            }
            let secret = profile.callback.flatMap { environment[$0.secretVariable] }
            let listener = CallbackListener(
                profile: profile, host: address.host, port: address.port, signingSecret: secret, signals: signals)
            return { ready in try await listener.run { _ in ready() } }
        case .serverSentEvents:
            let access = try EndpointAccess(profile: profile, options: options, environment: environment)
            guard let request = RequestBuilder.events(for: profile, apiKey: access.apiKey, baseURL: access.baseURL) else {
                throw .listener(endpoint: profile.id, flow: flow, reason: "the endpoint has no event stream")
            }
            let stream = EventStreamListener(
                client: client, request: request, profile: profile, signals: signals,
                limits: EventStreamLimits(maxLineBytes: options.maxEventLineBytes, maxEventBytes: options.maxEventBytes))
            // Jobs are polled as a fallback, so an unreachable stream does not
            // hold edits up: it is ready as soon as it is trying (and a stream
            // closed over its limits leaves its jobs to polling).
            return { ready in
                ready()
                await stream.run()
            }
        default:
            return nil
        }
    }

    /// Edits one input: prepares it (and its references) for the endpoint,
    /// reserves the estimate with the budget, sends the request (or as many
    /// as `numImages` needs where the endpoint has no count field, in
    /// parallel), waits for the results, downloads them at once, converts and
    /// restores them. Each request is a `PaidRequest` state machine, which
    /// alone decides what may have been billed: once the endpoint has given
    /// a job id, the job is only ever asked about, never sent again; a
    /// request it accepted or answered stays spent whatever fails after.
    /// Throws `EditError`.
    public func edit(_ input: EditInput, options: EditOptions? = nil, hooks: EditHooks = EditHooks()) async throws
        -> EditResult
    {
        let options = options ?? self.options
        guard let (store, key) = hooks.idempotency else {
            return try await route(input, options: options, hooks: hooks).get()
        }
        let events = hooks.events
        switch try await store.claim(key, waiting: { try? await events?(.waitingForKey) }) {
        case .finished(let result):
            return result
        case .failed(let error):
            throw error
        case .claimed:
            break
        }
        let outcome: EditOutcome
        do {
            outcome = try await route(input, options: options, hooks: hooks)
        } catch {
            // Ended before any request could reach the endpoint.
            await store.release(key)
            throw EditError.wrapping(error)
        }
        switch (outcome.result, outcome.mayHaveBeenBilled) {
        case (.success(let result), _):
            await store.finish(key, .finished(result))
            return result
        case (.failure(let error), true):
            // A request that may have been billed: its retry gets this
            // answer, not a second request.
            await store.finish(key, .failed(error))
            throw error
        case (.failure(let error), false):
            // Nothing was billed (never sent, or refused by the endpoint):
            // the next request under the key runs it again.
            await store.release(key)
            throw error
        }
    }

    /// How an edit ended, and whether any of its requests may have been billed.
    private struct EditOutcome {
        var result: Result<EditResult, EditError>
        var mayHaveBeenBilled: Bool
        /// Every request was refused before the endpoint took it: nothing was billed there.
        var refusedBeforeAcceptance = false

        func get() throws(EditError) -> EditResult { try result.get() }
    }

    /// The outcome of an edit whose requests ended without completing.
    private func failed(_ run: EditRequests) async -> EditOutcome {
        let ended = await run.outcome()
        return EditOutcome(
            result: .failure(ended.failure), mayHaveBeenBilled: ended.mayHaveBeenBilled,
            refusedBeforeAcceptance: ended.refusedBeforeAcceptance)
    }

    /// What the stages share for one edit.
    struct Context: Sendable {
        var profile: ProviderProfile
        var options: EditOptions
        var access: EndpointAccess
        var flow: ProviderProfile.Flow
    }

    /// Sends the edit to its endpoint; with routing, to the endpoints in the
    /// order the policy ranks them for this input (by the price of its
    /// planned output on each, or the durations measured), going to the
    /// next only when every request of the edit was refused before the
    /// endpoint took it (`PaidRequest.refusedBeforeAcceptance`): never after
    /// an acceptance, never on an ambiguous failure. Endpoints that cannot
    /// take the input (a size they do not accept) are left out.
    private func route(_ input: EditInput, options: EditOptions, hooks: EditHooks) async throws -> EditOutcome {
        guard options.routing != nil else { return try await perform(input, options: options, hooks: hooks) }
        let size = try await routedSize(of: input)
        let offers: [EndpointOffer]
        do { offers = try options.offers(for: size, meanDurations: meanDurations) } catch { throw EditError.setting(error) }
        let usable = offers.filter(\.isPlanned)
        guard !usable.isEmpty else {
            if case .failure(let error) = offers.first?.plan { throw EditError.request(error) }
            throw EditError.setting(SettingError(.endpoint, .missing(hint: "no endpoint of the route takes this input")))
        }
        var hooks = hooks
        var after: (endpoint: String, reason: String)? = nil
        var outcome: EditOutcome? = nil
        for (attempt, offer) in usable.enumerated() {
            try await hooks.events?(.routed(endpoint: offer.profile.id, after: after))
            let ended = try await perform(input, options: options.on(offer.profile), hooks: hooks, isFallback: attempt > 0)
            outcome = ended
            guard case .failure(let error) = ended.result, ended.refusedBeforeAcceptance else { break }
            after = (offer.profile.id, error.reason(naming: \.name))
            // Refused there, so nothing of it stands: the next endpoint gets a new request.
            hooks.resume = hooks.resume.map { PaidRequest.Start(priced: $0.priced) }
        }
        return outcome!
    }

    /// The size routing prices an input at: the frame asked, else its header's displayed size.
    private func routedSize(of input: EditInput) async throws -> PixelSize {
        if let size = input.size { return size }
        let image = input.image
        return try await imagingWork(urgent: true) { () throws(EditError) -> PixelSize in
            do throws(ImagingError) {
                switch image {
                case .file(let path): return try ImageProbe.probe(file: path).displaySize
                case .data(let data): return try ImageProbe.probe(data: data).displaySize
                }
            } catch {
                throw .input(error)
            }
        }
    }

    private func perform(_ input: EditInput, options: EditOptions, hooks: EditHooks, isFallback: Bool = false) async throws
        -> EditOutcome
    {
        let start = Date()
        var timings = EditTimings()
        let profile: ProviderProfile
        do { profile = try options.profile() } catch { throw EditError.setting(error) }
        let context = Context(
            profile: profile, options: options,
            access: try EndpointAccess(profile: profile, options: options, environment: environment),
            flow: options.resolvedFlow(for: profile))
        guard let prompt = (input.prompt ?? options.prompt).flatMap({ $0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? nil : $0 })
        else { throw EditError.noPrompt(textFile: nil) }
        let seed = input.seed ?? options.seed
        let negativePrompt = input.negativePrompt ?? options.negativePrompt
        let events = hooks.events ?? { _ in }
        // A fallback is the same edit: it started, and holds its place, already.
        if !isFallback { try await events(.started) }

        // Each request starts from where an earlier run left it (a new
        // request otherwise); one that ended there ends here, unprepared.
        let count = options.requestsPerInput(on: profile)
        let priced = hooks.budget != nil || hooks.costLimited
        if hooks.resume != nil, count != 1 {
            throw EditError.request(ProvidersError(.invalidOption, "an edit picked up from a run's record has one request"))
        }
        let run = EditRequests(count: count, events: events)
        for index in 0..<count {
            let begin = index == 0 ? hooks.resume ?? PaidRequest.Start(priced: priced) : PaidRequest.Start(priced: priced)
            await run.feed(index, .start(begin))
        }
        if await run.allFinal() { return await failed(run) }

        // Prepare: the input planned for the endpoint, references normalised.
        let prepared: Prepared
        do {
            prepared = try await prepare(input, context: context)
        } catch {
            await run.feedAll(.failed(EditError.wrapping(error)))
            return await failed(run)
        }
        timings.prepare = Date().timeIntervalSince(start)
        let queued = Date()
        do {
            if !isFallback { try await events(.prepared) }
        } catch {
            await run.feedAll(.withdrawn)
            return await failed(run)
        }
        timings.queued = Date().timeIntervalSince(queued)
        let estimate = options.estimate(prepared.plan, on: profile).total

        // The request, within the endpoint's payload limit, or not sent at all.
        var built: BuiltRequest? = nil
        var requestEncoding: String? = nil
        if await run.any({ $0.state == .ready }) {
            do {
                var request = options.editRequest(prompt: prompt, seed: seed, negativePrompt: negativePrompt, profile: profile)
                request.images = prepared.payload
                var sending = try RequestBuilder.build(
                    request, plan: prepared.plan, for: profile, apiKey: context.access.apiKey, baseURL: context.access.baseURL,
                    flow: context.flow, timeout: options.timeouts.overall)
                if let limit = profile.requestLimits.limit(for: context.flow) {
                    let length = try sending.body.contentLength()
                    if length > limit {
                        (sending, requestEncoding) = try await fitted(
                            request, plan: prepared.plan, length: length, limit: limit, context: context)
                    }
                }
                built = sending
            } catch {
                await run.feedAll(.failed(EditError.wrapping(error)), where: { $0.state == .ready })
            }
        }
        await run.feedAll(
            .prepared(
                estimate: estimate, endpoint: profile.id, results: options.imagesPerRequest(on: profile),
                cancels: profile.routes.cancel != nil))

        // Money: every request of the edit reserved together, or none.
        let reservations = await run.pendingReservations()
        if !reservations.isEmpty {
            if let budget = hooks.budget {
                do {
                    switch try await budget.reserve(reservations.map { $0.estimate ?? 0 }) {
                    case .reserved(let held):
                        for (request, reservation) in zip(reservations, held) {
                            await run.hold(reservation, for: request.index, budget: budget)
                            await run.feed(request.index, .reserved)
                        }
                    case .refused(let refusal):
                        for request in reservations { await run.feed(request.index, .refused(refusal)) }
                    }
                } catch {
                    let failure = EditError.ledger("the budget could not be checked, so nothing was sent: \(error)")
                    for request in reservations { await run.feed(request.index, .failed(failure)) }
                }
            } else {
                for request in reservations { await run.feed(request.index, .reserved) }
            }
        }

        // Send (or pick up) every request, and wait for each to end and its
        // results to be downloaded, each address checked before connecting
        // and each download capped.
        let sent = Date()
        let stages = Stages(
            editor: self, context: context, built: built,
            checks: ResultChecks(
                maxBytes: options.maxResultBytes, deadline: options.timeouts.download,
                allowPrivateAddresses: options.allowPrivateResults, endpoint: context.access.baseURL ?? profile.baseURL))
        // A request that ends while others are still with the endpoint has
        // its results finished at once (and announced); the last one's wait
        // until every result is in, as a single request's always do.
        let finished = FinishedResults(driving: count)
        let imagesPerRequest = options.imagesPerRequest(on: profile)
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<count {
                group.addTask {
                    await run.drive(index, stages)
                    guard finished.driveEnded(), await run.isFinishing(index) else { return }
                    for (offset, data) in await run.downloads(of: index).enumerated() {
                        let image: EditedImage
                        do {
                            image = try await self.finish(data, input: input, prepared: prepared, options: options)
                        } catch {
                            finished.fail(error)
                            return
                        }
                        let position = index * imagesPerRequest + offset
                        finished.keep(image, at: position)
                        try? await events(.imageReady(ReadyImage(index: position, image: image, isLast: false)))
                    }
                }
            }
        }
        timings.endpoint = Date().timeIntervalSince(sent)
        guard await run.all({ if case .finishing = $0.state { true } else { false } }) else {
            // A request failed: the others' results are billed and kept to
            // be fetched again, not delivered in part.
            let failure = await run.firstFailure() ?? .stopped
            await run.feedAll(.failed(failure), where: { if case .finishing = $0.state { true } else { false } })
            return await failed(run)
        }
        try? await events(.fetched)
        timings.fetch = Date().timeIntervalSince(sent) - timings.endpoint

        // Convert and restore on the local cores, then deliver.
        do {
            let finishing = Date()
            if let failure = finished.failure { throw failure }
            var images: [EditedImage] = []
            let downloads = await run.downloads()
            let lastToFinish = downloads.indices.last { finished.image(at: $0) == nil }
            for (position, data) in downloads.enumerated() {
                if let image = finished.image(at: position) {
                    images.append(image)
                    continue
                }
                let image = try await finish(data, input: input, prepared: prepared, options: options)
                images.append(image)
                try? await events(.imageReady(ReadyImage(index: position, image: image, isLast: position == lastToFinish)))
            }
            timings.finish = Date().timeIntervalSince(finishing)
            timings.total = Date().timeIntervalSince(start)
            let answers = await run.answers()
            let reported = answers.compactMap(\.reportedCost)
            let result = EditResult(
                images: images, endpoint: profile.id, model: profile.model, prompt: prompt, seed: seed,
                source: prepared.source, plan: prepared.plan, restored: input.size != nil ? .exact : options.restore,
                flow: context.flow, requestIDs: answers.compactMap(\.jobID),
                submissions: answers.reduce(0) { $0 + $1.submissions }, polls: answers.reduce(0) { $0 + $1.polls },
                estimatedCost: estimate.map { $0 * Decimal(count) },
                reportedCost: reported.count == answers.count && !reported.isEmpty ? reported.reduce(0, +) : nil,
                timings: timings, warnings: answers.flatMap(\.warnings), requestEncoding: requestEncoding)
            durations.withLock { measured in
                let before = measured[profile.id] ?? (0, 0)
                measured[profile.id] = (before.seconds + timings.endpoint, before.edits + 1)
            }
            let outputs = try await hooks.deliver?(result) ?? []
            await run.feedAll(.delivered(outputs: outputs))
            return EditOutcome(result: .success(result), mayHaveBeenBilled: true)
        } catch {
            await run.feedAll(.failed(EditError.wrapping(error)))
            return await failed(run)
        }
    }

    /// Results finished while other requests of the edit are still with the
    /// endpoint, by their place in the edit's result.
    final class FinishedResults: Sendable {
        private let state: Mutex<(driving: Int, images: [Int: EditedImage], failure: (any Error)?)>

        init(driving: Int) { state = Mutex((driving, [:], nil)) }

        /// A request's I/O ended: whether others are still driving (its results are finished now).
        func driveEnded() -> Bool {
            state.withLock { state in
                state.driving -= 1
                return state.driving > 0
            }
        }

        func keep(_ image: EditedImage, at position: Int) { state.withLock { $0.images[position] = image } }
        func image(at position: Int) -> EditedImage? { state.withLock { $0.images[position] } }
        func fail(_ error: any Error) { state.withLock { $0.failure = $0.failure ?? error } }
        var failure: (any Error)? { state.withLock { $0.failure } }
    }

    /// One result converted and restored as the options ask, and composited
    /// through the mask when there is one: decoded once, encoded once.
    private func finish(_ data: Data, input: EditInput, prepared: Prepared, options: EditOptions) async throws -> EditedImage {
        let geometry = prepared.geometry
        var delivered = options
        if input.size != nil { delivered.restore = .exact }  // back to the frame: exactly the size asked
        let finishOptions = delivered
        // Composited here: the edit where the mask is clear, the input where it is opaque.
        let layers: CompositeLayers? = prepared.mask.map { mask in
            switch prepared.original {
            case .data(let bytes): CompositeLayers(original: bytes, framedIn: prepared.frame, mask: mask)
            case .file(let path): CompositeLayers(originalFile: path, framedIn: prepared.frame, mask: mask)
            }
        }
        return try await imagingWork { try Self.finish(data, geometry: geometry, layers: layers, options: finishOptions) }
    }

    /// How the I/O steps of a request are carried out: send, poll, fetch.
    struct Stages: Sendable {
        let editor: Editor
        let context: Context
        let built: BuiltRequest?
        let checks: ResultChecks

        /// Sends the request: what the endpoint answered, as the next event,
        /// and for an accepted job when it was submitted and accepted.
        func send() async -> (PaidRequest.Event, WaitStart?) {
            guard let built else { return (.failed(.request(ProvidersError(.invalidOption, "no request was built"))), nil) }
            do {
                switch try await editor.client.submit(built, on: context.profile) {
                case .answered(let job):
                    return (.answered(EndpointAnswer(job)), nil)
                case .accepted(let id, _, let submissions, let submittedAt, let acceptedAt):
                    return (
                        .accepted(jobID: id, submissions: submissions),
                        WaitStart(submittedAt: submittedAt, acceptedAt: acceptedAt, submissions: submissions)
                    )
                }
            } catch {
                return (.failed(EditError.wrapping(error)), nil)
            }
        }

        /// Asks about job `id` until it ends (from `waits`, when this run submitted it).
        func poll(_ id: String, waits: WaitStart?) async -> PaidRequest.Event {
            let profile = context.profile
            let access = context.access
            guard let request = RequestBuilder.poll(id: id, for: profile, apiKey: access.apiKey, baseURL: access.baseURL) else {
                return .failed(
                    .endpoint(
                        ClientError(
                            kind: .rejected, message: "\(profile.id) documents no way to ask about job \(id)", endpoint: profile.id,
                            jobID: id)))
            }
            let policy = context.options.waitPolicy(on: profile)
            let (submittedAt, acceptedAt) = (waits?.submittedAt, waits?.acceptedAt)
            do {
                let job = try await editor.client.wait(
                    for: id, request: request, on: profile, policy: policy, signals: editor.signals,
                    deadline: submittedAt.map { $0 + .seconds(policy.timeout) }, submittedAt: submittedAt, acceptedAt: acceptedAt)
                var answer = EndpointAnswer(job)
                answer.submissions = waits?.submissions ?? 0
                return .answered(answer)
            } catch {
                return .failed(EditError.wrapping(error))
            }
        }

        /// Cancels job `id`, given up: what the endpoint said. It is asked
        /// even when the edit was stopped (that is when it is needed), in a
        /// task of its own that the stop does not cancel.
        func cancel(_ id: String) async -> CancelOutcome {
            let profile = context.profile
            let access = context.access
            guard let request = RequestBuilder.cancel(id: id, for: profile, apiKey: access.apiKey, baseURL: access.baseURL) else {
                return .refused(message: "\(profile.id) has no way to cancel a job")
            }
            let client = editor.client
            return await Task { await client.cancel(id, request: request, on: profile) }.value
        }

        /// Downloads (or decodes) every result of `answer`, at once (some
        /// URLs expire), each address checked before connecting and each
        /// download capped.
        func fetch(_ answer: EndpointAnswer) async -> Result<[Data], EditError> {
            let profile = context.profile
            do {
                var results: [Data] = []
                for image in answer.results { results.append(try await editor.client.fetch(image, from: profile, checks: checks)) }
                return .success(results)
            } catch {
                return .failure(EditError.wrapping(error))
            }
        }
    }

    /// The request again with its images encoded smaller, step by step (JPEG,
    /// or WebP where the endpoint takes no JPEG, at falling quality; alpha
    /// flattened onto white), until its body fits `limit`: the first that
    /// fits is sent, and its encoding named. Refused when none fits; `length`
    /// is the body's size as prepared.
    private func fitted(_ request: EditRequest, plan: SizePlan, length: Int, limit: Int, context: Context) async throws
        -> (BuiltRequest, String)
    {
        let profile = context.profile
        let format: OutputFormat = profile.images.accepts.contains(.jpeg) ? .jpeg : .webp
        var smallest = length
        for quality in [85, 70, 55, 40] {
            var smaller = request
            var images: [PayloadImage] = []
            for image in request.images {
                guard case .bytes(let data, _, _) = image else {
                    images.append(image)
                    continue
                }
                let encode = EncodeOptions(format: format, quality: quality)
                let encoded = try await imagingWork { () throws(EditError) -> Data in
                    do throws(ImagingError) {
                        return try ImageProcessor.prepare(data: data, resize: nil, encode: encode).data
                    } catch {
                        throw .input(error)
                    }
                }
                images.append(.bytes(encoded, format: format, filename: "image.\(format.fileExtension)"))
            }
            smaller.images = images
            let built = try RequestBuilder.build(
                smaller, plan: plan, for: profile, apiKey: context.access.apiKey, baseURL: context.access.baseURL,
                flow: context.flow, timeout: context.options.timeouts.overall)
            let length = try built.body.contentLength()
            if length <= limit { return (built, "\(format == .jpeg ? "JPEG" : "WebP") quality \(quality)") }
            smallest = min(smallest, length)
        }
        throw EditError.requestTooLarge(endpoint: profile.id, flow: context.flow, bytes: smallest, limit: limit)
    }

    /// An answer with at most the results asked for: more is the endpoint's
    /// error, and none of them is recorded or fetched.
    private static func counted(_ answer: JobResult, context: Context) throws -> JobResult {
        let asked = context.options.imagesPerRequest(on: context.profile)
        guard answer.images.count > asked else { return answer }
        throw ClientError(
            kind: .badResponse,
            message: "\(context.profile.id) answered with \(answer.images.count) results to a request for \(asked); none was fetched (the job was accepted and may be billed)",
            endpoint: context.profile.id, jobID: answer.requestID)
    }

    /// The prepared input: its bytes as sent, plan and geometry, header, and
    /// the payload images (input first, then references).
    struct Prepared: Sendable {
        var plan: SizePlan
        /// How the frame (the input, or its frame at the size asked) was
        /// resized for the endpoint: undone on each result.
        var geometry: ResizeGeometry
        /// The input's own header.
        var source: ImageInfo
        var payload: [PayloadImage]
        /// The input, which the results are composited over.
        var original: ImageSource
        /// The frame the input was fitted into (the size asked); nil: none.
        var frame: ResizeOptions?
        /// The mask, checked, decoded and fitted as the input was.
        var mask: MaskWeights?
    }

    private func prepare(_ input: EditInput, context: Context) async throws -> Prepared {
        let options = context.options
        // The frame the results are delivered at: the input is fitted into
        // it and resized for the endpoint in one pass (decoded once, encoded
        // once).
        let frame = input.size.map {
            ResizeOptions(size: $0, fit: options.fit, position: options.position, fill: options.background)
        }
        let source = input.image
        // The mask is decoded while the input is: each decoder runs on one
        // core, so the two overlap where one after the other they would not.
        async let weights = preparedMask(input.mask, of: source, framedIn: frame, options: options)
        let (main, plan) = try await imagingWork(urgent: true) {
            try Self.prepare(source, framedIn: frame, context: context, plan: true)
        }
        var payload: [PayloadImage] = [
            .bytes(main.data, format: main.format, filename: "input.\(main.format.fileExtension)")
        ]
        for reference in input.references {
            let (prepared, _) = try await imagingWork(urgent: true) {
                try Self.prepare(reference, framedIn: nil, context: context, plan: false)
            }
            payload.append(
                .bytes(prepared.data, format: prepared.format, filename: "reference.\(prepared.format.fileExtension)"))
        }
        guard let plan else { throw EditError.request(ProvidersError(.invalidOption, "no size plan for the input")) }
        // The input's errors come first, the mask's after them.
        let mask = try await weights
        return Prepared(
            plan: plan, geometry: main.geometry, source: main.source, payload: payload, original: input.image, frame: frame,
            mask: mask)
    }

    /// A mask made for `source`: checked against the input's header before
    /// it is decoded, then fitted as the input is, with a size into the
    /// frame, its padding transparent (outside the input there is nothing to
    /// keep); only its alpha is kept. Nil without a mask.
    private func preparedMask(_ mask: ImageSource?, of source: ImageSource, framedIn frame: ResizeOptions?, options: EditOptions)
        async throws -> MaskWeights?
    {
        guard let mask else { return nil }
        let limits = options.limits
        return try await imagingWork(urgent: true) { () throws(EditError) -> MaskWeights in
            let original: ImageInfo
            do throws(ImagingError) {
                // Read here too (a header, no pixels): the input's own errors are its prepare's.
                switch source {
                case .data(let data): original = try ImageProbe.probe(data: data)
                case .file(let path): original = try ImageProbe.probe(file: path)
                }
            } catch {
                throw .input(error)
            }
            do throws(ImagingError) {
                switch mask {
                case .data(let data):
                    return try ImageProcessor.maskWeights(data: data, for: original, framedIn: frame, limits: limits)
                case .file(let path):
                    return try ImageProcessor.maskWeights(file: path, for: original, framedIn: frame, limits: limits)
                }
            } catch {
                throw .mask(error)
            }
        }
    }

    /// Prepares an input (fitted into `frame` when given, then planned for
    /// the endpoint) or a reference (only normalised), in a format the
    /// endpoint decodes: the input's own where the endpoint takes it, else
    /// PNG, and PNG where the frame's padding is transparent and that format
    /// has no alpha.
    private static func prepare(_ source: ImageSource, framedIn frame: ResizeOptions?, context: Context, plan: Bool) throws
        -> (PreparedImage, SizePlan?)
    {
        let options = context.options
        let profile = context.profile
        var planned: SizePlan? = nil
        var refusal: ProvidersError? = nil
        let choose: (ImageInfo, PixelSize) throws(ImagingError) -> (ResizeOptions?, EncodeOptions) = { info, size throws(ImagingError) in
            let accepts = profile.images.accepts
            var format = accepts.contains(info.format.defaultOutput) ? info.format.defaultOutput : .png
            if case .colour(let fill)? = frame?.fill, !fill.isOpaque, !format.supportsAlpha { format = .png }
            // Decoded once by the endpoint: no second pass for smaller Huffman tables.
            let encode = EncodeOptions(format: format, quality: format == .png ? nil : 95, optimizeCoding: false)
            guard plan else { return (nil, encode) }
            do throws(ProvidersError) {
                let sized = try options.plan(size, on: profile)
                planned = sized
                return (
                    ResizeOptions(size: sized.target, fit: sized.fit, position: options.position, fill: options.background),
                    encode
                )
            } catch {
                refusal = error
                throw ImagingError(.invalidOption, error.message)
            }
        }
        do throws(ImagingError) {
            let prepared: PreparedImage
            switch source {
            // The endpoint needs an image it accepts, not a quality: a JPEG
            // already at the planned size goes as it is, metadata removed.
            case .file(let path):
                prepared = try ImageProcessor.prepare(
                    file: path, framedIn: frame, limits: options.limits, reusingUnchanged: true, choosing: choose)
            case .data(let data):
                prepared = try ImageProcessor.prepare(
                    data: data, framedIn: frame, limits: options.limits, reusingUnchanged: true, choosing: choose)
            }
            return (prepared, planned)
        } catch {
            if let refusal { throw EditError.request(refusal) }
            throw EditError.input(error)
        }
    }

    /// Converts and/or restores a result to what the options ask for. Every
    /// result is checked against `limits` from its header and decoded in
    /// full before anything is written; by default it is encoded again from
    /// its pixels (no metadata of the endpoint's survives). With
    /// `keepResultBytes`, a result needing no change keeps its own bytes
    /// once it has decoded cleanly. With `layers`, the result is restored
    /// and composited through the mask over its original in the same pass.
    private static func finish(_ result: Data, geometry: ResizeGeometry, layers: CompositeLayers?, options: EditOptions) throws
        -> EditedImage
    {
        do {
            let info = try ImageProbe.probe(data: result)
            try options.limits.check(info)
            let wanted = options.format ?? OutputFormat(name: info.format.rawValue) ?? .png
            let encode = EncodeOptions(format: wanted, quality: options.quality)
            let size = info.displaySize
            var restoring: ResizeGeometry? = nil
            var unchanged = wanted.rawValue == info.format.rawValue && options.quality == nil && info.orientation == 1
            if let mode = options.restore {
                let content = geometry.contentRect(inResultOf: size)
                unchanged =
                    unchanged && content == PixelRect(x: 0, y: 0, width: size.width, height: size.height)
                    && (mode == .aspect || geometry.sourceRect.size == size)
                // Undone unless nothing about the result changes, and always under a composite.
                if layers != nil || !unchanged { restoring = geometry }
            }
            if layers == nil && unchanged && options.keepResultBytes {
                // The endpoint's bytes, kept only once every byte of them decoded.
                let preview = try ImageProcessor.verify(data: result, limits: options.limits, preview: options.preview)
                return EditedImage(data: result, format: wanted, size: size, preview: preview)
            }
            // Decoded once, restored and composited as asked, encoded once.
            let finished = try ImageProcessor.finish(
                result: result, restoring: restoring, mode: options.restore ?? .exact, compositing: layers, encode: encode,
                limits: options.limits, preview: options.preview)
            return EditedImage(data: finished.data, format: wanted, size: finished.size, preview: finished.preview)
        } catch {
            throw EditError.result(error)
        }
    }
}
